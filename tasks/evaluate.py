"""Evaluate a saved model on the test split: metrics plus the misclassified images for the report.

The test images are prepared with the *model's* preprocessing (from its metadata),
so any saved model can be evaluated on a dataset, whether the data comes as the
fetched IDX files (:class:`~tasks.data.datasets.DatasetFiles`) or as prepared arrays
(:class:`~tasks.data.prepare.PreparedData`, whose standardisation is undone first).
The work is cheap (one batched forward pass over the test set), so nothing is
cached: a model file rewritten at the same path is always evaluated afresh.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from nn.io import load_model
from tasks.data.datasets import DatasetFiles
from tasks.data.idx import check_pair, read_idx
from tasks.data.prepare import PreparedData, check_preprocessing, prepare_images
from tasks.registry.store import metadata_dataset
from tasks.scoring.metrics import (
    EvaluationError,
    class_names,
    evaluation_metrics,
    select_misclassified,
)


@dataclass(frozen=True)
class Evaluation:
    """Test metrics of one model and the sample of mistakes the report shows.

    Attributes
    ----------
    metrics:
        :func:`tasks.scoring.metrics.evaluation_metrics` output (plain JSON types).
    images:
        ``(m, rows, cols)`` float32 in ``[0, 1]``: the ``m`` most confident mistakes.
    y_true, y_pred:
        ``(m,)`` int64 labels of those images.
    indices:
        ``(m,)`` int64 positions in the test split.
    confidence:
        ``(m,)`` float32 probability given to each wrong prediction.
    """

    metrics: dict[str, Any]
    images: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    indices: np.ndarray
    confidence: np.ndarray


def load_test_split(data: DatasetFiles | PreparedData) -> tuple[np.ndarray, np.ndarray]:
    """The raw test split: uint8 ``(n, rows, cols)`` images and int64 ``(n,)`` labels."""
    if isinstance(data, DatasetFiles):
        images = read_idx(data.test_images, kind="images")
        labels = read_idx(data.test_labels, kind="labels")
        check_pair(
            images,
            labels,
            n_classes=data.n_classes,
            images_name=str(data.test_images),
            labels_name=str(data.test_labels),
        )
        return images, labels.astype(np.int64)
    if isinstance(data, PreparedData):
        splits = data.load(mmap=True)
        standardize, mean, std = check_preprocessing(data.preprocessing)
        x01 = np.asarray(splits.X_test, dtype=np.float32)
        if standardize:
            x01 = x01 * np.float32(std) + np.float32(mean)
        images = np.rint(np.clip(x01, 0.0, 1.0) * 255).astype(np.uint8)
        return images.reshape(-1, *data.image_shape), np.asarray(splits.y_test, dtype=np.int64)
    raise EvaluationError(f"data must be DatasetFiles or PreparedData, got {type(data).__name__}")


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a Prefect run, this module's logger under ``task.fn()``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _evaluate(model_path: str, data: DatasetFiles | PreparedData, max_errors: int) -> Evaluation:
    logger = _logger()
    model, meta = load_model(model_path)
    if "preprocessing" not in meta:
        raise EvaluationError(
            f"{model_path}: metadata has no 'preprocessing'; cannot prepare images"
        )
    images, labels = load_test_split(data)
    n_in, n_out = model.layer_sizes[0], model.layer_sizes[-1]
    if n_in != int(np.prod(images.shape[1:])) or n_out != data.n_classes:
        raise EvaluationError(
            f"{model_path}: model maps {n_in} inputs to {n_out} classes, but dataset "
            f"{data.name!r} has {images.shape[1]}x{images.shape[2]} images and "
            f"{data.n_classes} classes"
        )
    trained_on = metadata_dataset(meta)
    if trained_on is not None and trained_on != data.name:
        logger.warning(
            "model %s was trained on %r, evaluated on %r", model_path, trained_on, data.name
        )
    X = prepare_images(images, meta["preprocessing"])
    proba = model.predict_proba(X)
    loss, _ = model.evaluate(X, labels)  # exact cross-entropy from the logits
    names = class_names(data.name, data.n_classes)
    metrics = evaluation_metrics(labels, proba, names, test_loss=loss)
    sample = select_misclassified(images.astype(np.float32) / 255, labels, proba, max_errors)
    logger.info(
        "%s on %s test set (%d images): accuracy %.4f, loss %.4f",
        Path(model_path).name,
        data.name,
        len(labels),
        metrics["test_accuracy"],
        metrics["test_loss"],
    )
    return Evaluation(
        metrics, sample.images, sample.y_true, sample.y_pred, sample.indices, sample.confidence
    )


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_model(
    model_path: str, data: DatasetFiles | PreparedData, max_errors: int = 36
) -> Evaluation:
    """Evaluate the model at ``model_path`` on the test split; keep ``max_errors`` mistakes."""
    return _evaluate(model_path, data, max_errors)


@task(name="evaluate-metrics", cache_policy=NO_CACHE)
def evaluate(model_path: str, data: DatasetFiles | PreparedData) -> dict[str, Any]:
    """The test metrics dict of the model at ``model_path`` (no images)."""
    return _evaluate(model_path, data, 0).metrics
