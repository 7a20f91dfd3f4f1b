"""Test-set metrics of a classifier: accuracy, cross-entropy, per-class scores, confusion.

Pure functions over arrays. The confusion matrix ``C`` has true classes in rows; the
scores are those of :mod:`sklearn.metrics` (``zero_division=0``), computed with numpy
because importing scikit-learn dominated the start of every run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tasks.data.datasets import DATASETS
from tasks.errors import EvaluationError

#: Probabilities are clipped below at this value before the logarithm, so a
#: confidently wrong prediction costs at most ``-log(1e-12) ~ 27.6`` nats.
PROBA_FLOOR = 1e-12

FASHION_MNIST_CLASSES = list(DATASETS["fashion-mnist"].class_names)


def class_names(dataset: str, n_classes: int) -> list[str]:
    """The display names of the classes of ``dataset`` (case and ``_``/``-`` ignored):
    a known dataset's class names, else ``"0"`` .. ``str(n_classes - 1)``.

    Raises
    ------
    EvaluationError
        If ``n_classes`` is below 2 or does not match a known dataset.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise EvaluationError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    spec = DATASETS.get(dataset.strip().lower().replace("_", "-"))
    known = spec.class_names if spec is not None else ()
    if not known:
        return [str(i) for i in range(int(n_classes))]
    if n_classes != len(known):
        raise EvaluationError(
            f"dataset {dataset!r} has {len(known)} classes, but n_classes={n_classes}"
        )
    return list(known)


def _check_labels(y: np.ndarray, name: str, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise EvaluationError(f"{name} must be a non-empty 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise EvaluationError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise EvaluationError(
            f"{name} must lie in [0, {n_classes - 1}] for {n_classes} classes, "
            f"got values from {y.min()} to {y.max()}"
        )
    return y.astype(np.int64, copy=False)


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix ``C[true, predicted]`` of shape ``(k, k)``, int64 counts."""
    y_true = _check_labels(y_true, "y_true", n_classes)
    y_pred = _check_labels(y_pred, "y_pred", n_classes)
    if y_true.shape != y_pred.shape:
        raise EvaluationError(
            f"y_true and y_pred must have the same length, got {y_true.size} and {y_pred.size}"
        )
    cells = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return cells.reshape(n_classes, n_classes).astype(np.int64)


def per_class_scores(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 (``(k,)`` float64, 0 where undefined) and support (``(k,)``
    int64 true samples per class) from ``(k, k)`` counts with true classes in rows."""
    cm = np.asarray(cm, dtype=np.int64)
    hits = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    # F1 as scikit-learn computes it: 2 tp / (2 tp + fp + fn), the same harmonic mean.
    f1 = ratio(2 * hits, (support + predicted).astype(np.float64))
    return ratio(hits, predicted.astype(np.float64)), ratio(hits, support), f1, support


def evaluation_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    class_names: Sequence[str],
    *,
    test_loss: float | None = None,
) -> dict:
    """All test metrics of one model as plain JSON types.

    Parameters
    ----------
    y_true:
        ``(n,)`` integer labels in ``[0, k)``.
    proba:
        ``(n, k)`` predicted probabilities (rows sum to 1, within 1e-3).
    class_names:
        ``k`` display names, in label order.
    test_loss:
        The exact mean cross-entropy from the logits (``MLP.evaluate``), if the caller has
        it; else computed from ``proba`` (inexact below ``PROBA_FLOOR``: float32 underflow).

    Returns
    -------
    dict
        ``test_accuracy`` (fraction in [0, 1]), ``test_loss`` (mean cross-entropy in nats,
        probabilities floored at ``PROBA_FLOOR``), ``macro_f1``, ``n_test``,
        ``class_names``, ``per_class`` (list of ``{"class", "precision", "recall", "f1",
        "support"}``) and ``confusion_matrix`` (``k`` lists of ``k`` ints, true in rows).

    Raises
    ------
    EvaluationError
        If shapes, label ranges or probabilities are inconsistent.
    """
    names = [str(c) for c in class_names]
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise EvaluationError(f"proba must have shape (n, k) with k >= 2, got {proba.shape}")
    n, k = proba.shape
    if len(names) != k:
        raise EvaluationError(f"class_names has {len(names)} names but proba has {k} columns")
    y_true = _check_labels(y_true, "y_true", k)
    if y_true.size != n:
        raise EvaluationError(f"y_true has {y_true.size} labels but proba has {n} rows")
    p = proba.astype(np.float64)
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise EvaluationError("proba must be finite and non-negative")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > 1e-3:
        raise EvaluationError(f"proba rows must sum to 1; row {worst} sums to {sums[worst]:.6f}")

    y_pred = p.argmax(axis=1)
    cm = confusion_counts(y_true, y_pred, k)
    precision, recall, f1, support = per_class_scores(cm)
    if test_loss is None:
        test_loss = -np.mean(np.log(np.maximum(p[np.arange(n), y_true], PROBA_FLOOR)))
    elif not (math.isfinite(test_loss) and test_loss >= 0):
        raise EvaluationError(f"test_loss must be finite and >= 0, got {test_loss}")
    return {
        "test_accuracy": float(np.mean(y_pred == y_true)),
        "test_loss": float(test_loss),
        "macro_f1": float(f1.mean()),
        "n_test": int(n),
        "class_names": names,
        "per_class": [
            {
                "class": names[j],
                "precision": float(precision[j]),
                "recall": float(recall[j]),
                "f1": float(f1[j]),
                "support": int(support[j]),
            }
            for j in range(k)
        ],
        "confusion_matrix": cm.tolist(),
    }


@dataclass(frozen=True)
class Misclassified:
    """A sample of misclassified test images: ``images`` ``(m, h, w)`` float32 in ``[0, 1]``;
    ``y_true``, ``y_pred``, ``indices`` (positions in the test split) ``(m,)`` int64;
    ``confidence`` ``(m,)`` float32, the probability of the (wrong) prediction."""

    images: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    indices: np.ndarray
    confidence: np.ndarray


def select_misclassified(
    images: np.ndarray, y_true: np.ndarray, proba: np.ndarray, limit: int = 36
) -> Misclassified:
    """The ``limit`` (>= 0) most confident mistakes, most confident first (ties by test
    order), of ``images`` ``(n, h, w)`` in ``[0, 1]``, labels ``(n,)``, ``proba`` ``(n, k)``."""
    if limit < 0:
        raise EvaluationError(f"limit must be >= 0, got {limit}")
    images = np.asarray(images)
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba)
    if not (images.shape[0] == y_true.shape[0] == proba.shape[0]):
        raise EvaluationError(
            f"images, y_true and proba must have the same length, got "
            f"{images.shape[0]}, {y_true.shape[0]} and {proba.shape[0]}"
        )
    y_pred = proba.argmax(axis=1).astype(np.int64)
    confidence = proba.max(axis=1).astype(np.float32)
    wrong = np.flatnonzero(y_pred != y_true)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:limit]
    return Misclassified(
        images=np.clip(images[order], 0.0, 1.0).astype(np.float32),
        y_true=y_true[order],
        y_pred=y_pred[order],
        indices=order.astype(np.int64),
        confidence=confidence[order],
    )
