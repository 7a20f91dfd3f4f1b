"""The default validation split adapts to the images a run uses (``train_size``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.data.idx import read_idx
from tasks.data.prepare import PrepareParams, split_indices


@pytest.fixture(scope="module")
def labels(fashion_dir: Path) -> np.ndarray:
    return read_idx(fashion_dir / "train-labels-idx1-ubyte.gz")


def test_train_size_3000_scores_on_a_sixth_of_those_3000(labels: np.ndarray) -> None:
    train, val = split_indices(labels, PrepareParams(train_size=3000, seed=0))
    assert (len(train), len(val)) == (2500, 500)
    assert not set(train) & set(val)
    # the same 3,000 images the final model trains on (val_size=0), nothing from elsewhere
    used, none = split_indices(labels, PrepareParams(val_size=0, train_size=3000, seed=0))
    assert len(none) == 0 and set(train) | set(val) == set(used)
    assert np.bincount(labels[val], minlength=10).tolist() == [50] * 10  # stratified


def test_the_file_and_explicit_sizes_keep_their_meaning(labels: np.ndarray) -> None:
    train, val = split_indices(labels, PrepareParams(seed=0))
    assert (len(train), len(val)) == (50_000, 10_000)  # a sixth of the file, at most 10,000
    train, val = split_indices(labels, PrepareParams(train_size=60_000, seed=0))
    assert (len(train), len(val)) == (50_000, 10_000)  # every image: the same as no size
    train, val = split_indices(labels, PrepareParams(val_size=1000, train_size=3000, seed=0))
    assert (len(train), len(val)) == (3000, 1000)  # given: held out of the file as asked
    train, val = split_indices(labels, PrepareParams(train_size=15, seed=0))
    assert (len(train), len(val)) == (15, 10_000)  # too few to hold out one per class
