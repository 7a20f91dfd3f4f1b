"""Scoring a saved model on the test split, with a small model trained on real Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nn.config import TrainConfig
from nn.errors import ModelFileError
from nn.io import load_model, save_model
from nn.model import MLP
from nn.train import train
from tasks.data.idx import read_idx
from tasks.data.prepare import PreparedData
from tasks.data.scaling import prepare_images
from tasks.data.sources import fetch_files
from tasks.scoring.metrics import FASHION_MNIST_CLASSES, EvaluationError
from tasks.scoring.testset import Evaluation, load_test_split, score_model
from tests.tasks.search_data import small_fashion


@pytest.fixture(scope="module")
def prepared(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    return small_fashion(fashion_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def files(fashion_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("evaluate-cache")
    return fetch_files("fashion-mnist", data_dir=str(fashion_dir), cache_dir=cache, mirrors=[])


@pytest.fixture(scope="module")
def model_path(prepared: PreparedData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A softmax regression trained for 3 epochs on 2,000 real images (about 75% accurate)."""
    splits = prepared.load()
    model = MLP.create((784, 10), rng=np.random.default_rng(0))
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    train(model, splits.X_train, splits.y_train, config, rng=np.random.default_rng(1))
    path = tmp_path_factory.mktemp("evaluate-model") / "model.npz"
    meta = {"preprocessing": dict(prepared.preprocessing), "dataset": {"name": prepared.name}}
    save_model(path, model, meta)
    return path


def test_scores_and_mistakes(model_path: Path, prepared: PreparedData, files) -> None:
    result = score_model(model_path, files)
    assert isinstance(result, Evaluation)
    m = result.metrics
    assert m["class_names"] == FASHION_MNIST_CLASSES and m["n_test"] == 10_000
    # the same numbers as the model's own evaluation of the prepared test split
    model, _ = load_model(model_path)
    splits = prepared.load()
    loss, accuracy = model.evaluate(splits.X_test, splits.y_test)
    assert 0.6 < m["test_accuracy"] < 0.95
    assert m["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert m["test_loss"] == pytest.approx(loss, rel=1e-6)  # exact, from the logits
    assert sum(map(sum, m["confusion_matrix"])) == 10_000
    # the 36 most confident mistakes, as images in [0, 1] taken from the raw test file
    assert result.images.shape == (36, 28, 28) and result.images.dtype == np.float32
    assert np.all(result.y_true != result.y_pred)
    assert np.all(np.diff(result.confidence) <= 0)
    raw = read_idx(files.test_images)
    np.testing.assert_array_equal(result.images, raw[result.indices] / np.float32(255))
    images, labels = load_test_split(files)
    np.testing.assert_array_equal(images, raw)
    np.testing.assert_array_equal(labels, read_idx(files.test_labels))
    np.testing.assert_array_equal(result.y_true, labels[result.indices])


def test_model_preprocessing_is_applied(prepared: PreparedData, files, tmp_path: Path) -> None:
    """A model trained without standardisation is fed unstandardised pixels."""
    splits = prepared.load()
    raw_pre = {"standardize": False, "mean": 0.0, "std": 1.0}
    images, _ = load_test_split(files)
    model = MLP.create((784, 10), rng=np.random.default_rng(0))
    X01 = splits.X_train * np.float32(prepared.preprocessing["std"]) + np.float32(
        prepared.preprocessing["mean"]
    )
    train(model, X01, splits.y_train, TrainConfig(epochs=2, lr=0.1), rng=np.random.default_rng(1))
    save_model(tmp_path / "raw.npz", model, {"preprocessing": raw_pre})
    metrics = score_model(tmp_path / "raw.npz", files, max_errors=0).metrics
    _, accuracy = model.evaluate(prepare_images(images, raw_pre), splits.y_test)
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert metrics["test_accuracy"] > 0.6


def test_errors_name_the_model(prepared: PreparedData, files, tmp_path: Path) -> None:
    wrong = MLP.create((784, 5), rng=np.random.default_rng(0))
    save_model(tmp_path / "five.npz", wrong, {"preprocessing": dict(prepared.preprocessing)})
    with pytest.raises(EvaluationError, match=r"five\.npz: model maps 784 inputs to 5 classes"):
        score_model(tmp_path / "five.npz", files)
    bare = MLP.create((784, 10), rng=np.random.default_rng(0))
    save_model(tmp_path / "bare.npz", bare, {})
    with pytest.raises(EvaluationError, match=r"bare\.npz: metadata has no 'preprocessing'"):
        score_model(tmp_path / "bare.npz", files)
    with pytest.raises(ModelFileError):
        score_model(tmp_path / "absent.npz", files)
