"""The evaluate tasks on a small model trained on real Fashion-MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prefect import flow

from nn.config import TrainConfig
from nn.errors import ModelFileError
from nn.io import load_model, save_model
from nn.model import MLP
from nn.train import train
from tasks.data.idx import read_idx
from tasks.data.prepare import PreparedData, prepare_images
from tasks.data.sources import fetch_files
from tasks.evaluate import Evaluation, evaluate, evaluate_model, load_test_split
from tasks.scoring.metrics import FASHION_MNIST_CLASSES, EvaluationError
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


def test_evaluation_on_prepared_data(model_path: Path, prepared: PreparedData) -> None:
    result = evaluate_model.fn(str(model_path), prepared)
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


def test_prepared_and_files_agree(model_path: Path, prepared: PreparedData, files) -> None:
    from_prepared = evaluate_model.fn(str(model_path), prepared)
    from_files = evaluate_model.fn(str(model_path), files)
    assert from_files.metrics["test_accuracy"] == from_prepared.metrics["test_accuracy"]
    assert from_files.metrics["test_loss"] == pytest.approx(from_prepared.metrics["test_loss"])
    np.testing.assert_array_equal(from_files.indices, from_prepared.indices)
    raw = read_idx(files.test_images)
    np.testing.assert_array_equal(from_files.images, raw[from_files.indices] / np.float32(255))
    np.testing.assert_allclose(from_prepared.images, from_files.images, atol=1e-6)
    images, labels = load_test_split(prepared)
    np.testing.assert_array_equal(images, raw)  # standardisation undone exactly
    np.testing.assert_array_equal(labels, read_idx(files.test_labels))


def test_model_preprocessing_is_applied(prepared: PreparedData, files, tmp_path: Path) -> None:
    """A model trained without standardisation is fed unstandardised pixels."""
    splits = prepared.load()
    raw_pre = {"standardize": False, "mean": 0.0, "std": 1.0}
    images, _ = load_test_split(prepared)
    model = MLP.create((784, 10), rng=np.random.default_rng(0))
    X01 = splits.X_train * np.float32(prepared.preprocessing["std"]) + np.float32(
        prepared.preprocessing["mean"]
    )
    train(model, X01, splits.y_train, TrainConfig(epochs=2, lr=0.1), rng=np.random.default_rng(1))
    save_model(tmp_path / "raw.npz", model, {"preprocessing": raw_pre})
    metrics = evaluate_model.fn(str(tmp_path / "raw.npz"), prepared, max_errors=0).metrics
    _, accuracy = model.evaluate(prepare_images(images, raw_pre), splits.y_test)
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert metrics["test_accuracy"] > 0.6


def test_errors_name_the_model(prepared: PreparedData, tmp_path: Path) -> None:
    wrong = MLP.create((784, 5), rng=np.random.default_rng(0))
    save_model(tmp_path / "five.npz", wrong, {"preprocessing": dict(prepared.preprocessing)})
    with pytest.raises(EvaluationError, match=r"five\.npz: model maps 784 inputs to 5 classes"):
        evaluate_model.fn(str(tmp_path / "five.npz"), prepared)
    bare = MLP.create((784, 10), rng=np.random.default_rng(0))
    save_model(tmp_path / "bare.npz", bare, {})
    with pytest.raises(EvaluationError, match=r"bare\.npz: metadata has no 'preprocessing'"):
        evaluate_model.fn(str(tmp_path / "bare.npz"), prepared)
    with pytest.raises(ModelFileError):
        evaluate_model.fn(str(tmp_path / "absent.npz"), prepared)


def test_tasks_in_a_flow(prefect_harness, model_path: Path, prepared: PreparedData) -> None:
    @flow
    def evaluation_flow() -> tuple[Evaluation, dict]:
        return evaluate_model(str(model_path), prepared, max_errors=8), evaluate(
            str(model_path), prepared
        )

    result, metrics = evaluation_flow()
    assert result.images.shape == (8, 28, 28)
    assert metrics == result.metrics
