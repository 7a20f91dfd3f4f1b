"""Score a saved model on a dataset's test split: metrics plus the mistakes the report shows.

The raw test images are prepared with the *model's* preprocessing (from its metadata), so
any saved model can be scored on any fetched dataset of its shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nn.io import load_model
from nn.losses import cross_entropy, softmax
from tasks.data.datasets import DatasetFiles
from tasks.data.idx import check_pair, read_idx
from tasks.data.scaling import prepare_images
from tasks.data.versions import Added
from tasks.registry.files import metadata_dataset
from tasks.scoring.metrics import (
    EvaluationError,
    class_names,
    evaluation_metrics,
    select_misclassified,
)

Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class Evaluation:
    """Test metrics of one model (:func:`tasks.scoring.metrics.evaluation_metrics`) and
    the ``m`` most confident mistakes the report shows (fields of
    :class:`tasks.scoring.metrics.Misclassified`)."""

    metrics: dict[str, Any]
    images: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    indices: np.ndarray
    confidence: np.ndarray


def load_test_split(data: DatasetFiles) -> tuple[np.ndarray, np.ndarray]:
    """The raw test split: uint8 ``(n, rows, cols)`` images and int64 ``(n,)`` labels."""
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


def score_model(
    model_path: str | Path,
    data: DatasetFiles,
    max_errors: int = 36,
    *,
    logger: Logger | None = None,
) -> Evaluation:
    """Score the model at ``model_path`` on the test split of ``data``.

    The test images are prepared with the model's ``preprocessing`` (from its metadata);
    ``max_errors`` (>= 0) of the most confident mistakes are kept.

    Raises
    ------
    EvaluationError
        If the metadata has no preprocessing or the model does not fit the dataset.
    nn.errors.ModelFileError
        If the model file is missing or invalid.
    """
    log = logger or logging.getLogger(__name__)
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
        log.warning(
            "model %s was trained on %r, evaluated on %r", model_path, trained_on, data.name
        )
    logits = model.logits(prepare_images(images, meta["preprocessing"]))  # one forward pass
    proba = softmax(logits)
    loss = float(np.mean(cross_entropy(logits, labels), dtype=np.float64))  # exact, from logits
    names = class_names(data.name, data.n_classes)
    metrics = evaluation_metrics(labels, proba, names, test_loss=loss)
    sample = select_misclassified(images.astype(np.float32) / 255, labels, proba, max_errors)
    log.info(
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


def eval_set_scores(model_path: str | Path, data: DatasetFiles, added: Added) -> dict[str, Any]:
    """Accuracy of a saved model on the evaluation set: the test split plus the held-out
    part of the ``added`` batches (the set on which challenger and champion are compared).

    Returns
    -------
    dict
        ``accuracy`` and ``n`` (the whole set), ``test_accuracy``, ``n_test``,
        ``heldout_accuracy`` (None without held-out images) and ``n_heldout``.
    """
    model, meta = load_model(model_path)
    parts = {"test": load_test_split(data), "heldout": added.load(heldout=True)}
    correct = {}
    for name, (images, labels) in parts.items():
        if labels.size:
            X = prepare_images(images, meta["preprocessing"])
            correct[name] = int((model.predict(X) == labels).sum())
    n_test, n_heldout = parts["test"][1].size, parts["heldout"][1].size
    return {
        "accuracy": (correct["test"] + correct.get("heldout", 0)) / (n_test + n_heldout),
        "n": int(n_test + n_heldout),
        "test_accuracy": correct["test"] / n_test,
        "n_test": int(n_test),
        "heldout_accuracy": correct["heldout"] / n_heldout if n_heldout else None,
        "n_heldout": int(n_heldout),
    }
