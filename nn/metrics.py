"""Classification metrics in numpy."""

from __future__ import annotations

import numpy as np

from nn.errors import InputError


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise InputError(
            f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer):
            raise InputError(f"{name} must hold integer labels, got dtype {y.dtype}")
    if y_true.size == 0:
        raise InputError("y_true is empty: a metric needs at least one sample")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction in [0, 1] of positions where the (n,) integer labels agree."""
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.count_nonzero(y_true == y_pred) / y_true.size)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (k, k) int64: entry ``[i, j]`` is the number of samples of class i predicted as j.

    Both label arrays are (n,) integers in ``[0, n_classes)``.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 1:
        raise InputError(f"n_classes={n_classes!r} must be a positive integer")
    k = int(n_classes)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= k:
            raise InputError(f"{name} holds labels outside [0, {k}): min {y.min()}, max {y.max()}")
    flat = y_true.astype(np.int64) * k + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=k * k).reshape(k, k).astype(np.int64, copy=False)
