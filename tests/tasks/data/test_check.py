"""The data check: per-class counts, pixel statistics, the champion's accuracy and the gate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nn.io import load_model, save_model
from tasks.data.check import GATE_MIN_IMAGES, check_added, check_new_data, compare_pixels
from tasks.data.datasets import get_dataset
from tasks.data.scaling import prepare_images
from tasks.data.sources import fetch_files
from tasks.data.versions import DataStore, add_batch
from tasks.registry.store import Registry
from tests.flows.test_data_cli import write_idx
from tests.tasks.digit_images import mnist10k, train_digit_model

NAMES = [str(k) for k in range(10)]


@pytest.fixture(scope="module")
def digits(mnist_dir, tmp_path_factory):
    """A model trained on 8,000 real digits and 300 others it never saw."""
    X_train, y_train, X_test, y_test = mnist10k(mnist_dir)
    path = train_digit_model(X_train, y_train, tmp_path_factory.mktemp("m") / "m.npz", epochs=2)
    return path, X_train, X_test[:300], y_test[:300]


def predict(path, images):
    model, meta = load_model(path)
    return model.predict(prepare_images(images, meta["preprocessing"]))


def test_good_new_data_passes(digits):
    path, train, images, labels = digits
    check = check_new_data("mnist", ["a"], images, labels, train, NAMES,
                           ("v0001", 0.95, predict(path, images)))  # fmt: skip
    assert check.passed and check.champion_accuracy > 0.85
    assert sum(check.counts.values()) == 300 == check.n_new
    assert check.counts["1"] == int((labels == 1).sum())
    assert check.pixels["ink_area"]["p_value"] > 0.01  # the same kind of digits
    assert "passed" in check.to_markdown() and "| 1 |" in check.to_markdown()


def test_shuffled_labels_stop_the_retraining(digits):
    path, train, images, labels = digits
    shuffled = np.random.default_rng(0).permutation(labels)
    check = check_new_data("mnist", ["a"], images, shuffled, train, NAMES,
                           ("v0001", 0.95, predict(path, images)))  # fmt: skip
    assert not check.passed and check.champion_accuracy < 0.25
    assert "shuffled" in check.reason and "v0001" in check.reason
    assert "failed" in check.to_markdown()


def test_too_few_images_are_not_gated(digits):
    path, train, images, labels = digits
    few = GATE_MIN_IMAGES - 1
    wrong = (labels[:few] + 1) % 10
    check = check_new_data("mnist", ["a"], images[:few], wrong, train, NAMES,
                           ("v0001", 0.95, predict(path, images[:few])))  # fmt: skip
    assert check.passed and check.champion_accuracy < 0.2


def test_inverted_images_differ_from_the_training_set(digits):
    _, train, images, _ = digits
    pixels = compare_pixels(255 - images, train)
    assert pixels["mean_intensity"]["ks_statistic"] > 0.9
    assert pixels["mean_intensity"]["p_value"] < 1e-6


def test_only_batches_the_champion_has_not_seen_are_checked(digits, mnist_dir, tmp_path):
    path, _, images, labels = digits
    spec = get_dataset("mnist")
    store = DataStore(tmp_path / "store")
    ids = []
    for i, part in enumerate((slice(0, 100), slice(100, 300))):
        pair = [write_idx(tmp_path / f"i{i}.gz", images[part], 2051),
                write_idx(tmp_path / f"l{i}.gz", labels[part], 2049)]  # fmt: skip
        ids.append(add_batch(store, spec, [str(p) for p in pair])[0].id)
    model, meta = load_model(path)
    mine = {"preprocessing": meta["preprocessing"], "dataset": {"name": "mnist"}}
    save_model(tmp_path / "champion.npz", model, mine)
    registry = Registry(tmp_path / "reg")
    metrics = {"test_accuracy": 0.95, "data_version": ids[0]}  # the champion saw batch 1
    registry.register_and_promote(tmp_path / "champion.npz", metrics, dataset="mnist")
    files = fetch_files("mnist", data_dir=mnist_dir, cache_dir=tmp_path / "cache")
    check = check_added(files, store.added("mnist"), str(registry.root), str(store.root))
    assert check.new_batches == [ids[1]] and check.n_new == 200 and check.passed
    assert check.champion_version == "v0001" and check.champion_accuracy > 0.85
    assert json.loads(json.dumps(check.to_dict()))["new_batches"] == [ids[1]]
