"""Extra search parameters: ``augment`` becomes the trial's minibatch augmenter."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nn.errors import ConfigError
from tasks.fitting.augment import Augmenter
from tasks.tuning.extras import augment_extras, dataset_name


def test_augment_none_gives_no_augmenter():
    assert augment_extras({"augment": "none"}, SimpleNamespace(name="mnist")) == {"augment": None}


def test_augment_shift_uses_the_dataset_defaults():
    options = augment_extras({"augment": "shift"}, SimpleNamespace(name="fashion-mnist"))
    augmenter = options["augment"]
    assert isinstance(augmenter, Augmenter)
    assert augmenter.config.kind == "shift" and augmenter.config.hflip  # clothes are mirrored
    batch = np.random.default_rng(0).random((4, 784), dtype=np.float32)
    out = augmenter(batch, np.random.default_rng(1))
    assert out.shape == (4, 784) and out.dtype == np.float32


def test_the_dataset_is_named_by_the_data():
    assert dataset_name(SimpleNamespace(name="fashion-mnist")) == "fashion-mnist"
    with pytest.raises(ConfigError, match="cannot tell the dataset"):
        dataset_name(SimpleNamespace())


def test_unknown_extras_and_kinds_are_errors():
    with pytest.raises(ConfigError, match="dropout"):
        augment_extras({"dropout": 0.5}, SimpleNamespace(name="mnist"))
    with pytest.raises(ConfigError, match="rotate"):
        augment_extras({"augment": "rotate"}, SimpleNamespace(name="mnist"))


def test_augment_strength_of_a_trial_scales_the_augmentation():
    data = SimpleNamespace(name="mnist")
    full = augment_extras({"augment": "affine"}, data)["augment"]
    half = augment_extras({"augment": "affine", "augment_strength": 0.5}, data)["augment"]
    assert half.config.max_rotation == pytest.approx(full.config.max_rotation / 2)
    text = augment_extras({"augment": "affine", "augment_strength": "2"}, data)["augment"]
    assert text.config.max_shift == pytest.approx(2 * full.config.max_shift)
    with pytest.raises(ConfigError, match="augment_strength"):
        augment_extras({"augment": "affine", "augment_strength": "strong"}, data)
    with pytest.raises(ConfigError, match="strength"):
        augment_extras({"augment": "affine", "augment_strength": 5}, data)
