"""Pixel scaling shared by training and prediction: ``X = (images / 255 - mean) / std``.

The statistics come from the training split only (:func:`pixel_stats`) and are stored
with the prepared arrays and with every model, so new images (``mnist-flow predict``)
are scaled exactly as the training data was (:func:`prepare_images`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tasks.errors import DataError

_STATS_CHUNK = 1 << 22


def check_preprocessing(preprocessing: dict[str, Any]) -> tuple[bool, float, float]:
    """Validate a preprocessing dict; return ``(standardize, mean, std)``.

    Raises DataError when a key is missing or a value out of range (std finite and > 0).
    """
    try:
        standardize = preprocessing["standardize"]
        mean = float(preprocessing["mean"])
        std = float(preprocessing["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"preprocessing must have 'standardize' (bool), 'mean' and 'std' (floats): "
            f"{preprocessing!r} ({exc!r})"
        ) from None
    if not isinstance(standardize, bool):
        raise DataError(f"preprocessing['standardize'] must be a bool, got {standardize!r}")
    if not math.isfinite(mean) or not (math.isfinite(std) and std > 0):
        raise DataError(f"preprocessing mean/std must be finite with std > 0, got {mean}, {std}")
    return standardize, mean, std


def prepare_images(images_uint8: np.ndarray, preprocessing: dict[str, Any]) -> np.ndarray:
    """Scale (and standardise) uint8 ``(n, rows, cols)`` or ``(n, rows * cols)`` images as
    the training data was; float32 ``(n, rows * cols)``. ``preprocessing`` is
    ``{"standardize": bool, "mean": float, "std": float}`` (prepared data or model metadata).
    """
    standardize, mean, std = check_preprocessing(preprocessing)
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim not in (2, 3):
        raise DataError(
            "images must be uint8 of shape (n, rows, cols) or (n, rows * cols), "
            f"got {images.dtype} {images.shape}"
        )
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= np.float32(255.0)
    if standardize:
        X -= np.float32(mean)
        X /= np.float32(std)
    return X


def pixel_stats(images_uint8: np.ndarray) -> tuple[float, float]:
    """Return the global mean and std of ``images / 255`` (from a histogram: no big temporaries)."""
    flat = np.asarray(images_uint8).reshape(-1)
    counts = np.zeros(256, dtype=np.float64)
    for start in range(0, flat.size, _STATS_CHUNK):  # bincount casts to intp: bound the copy
        counts += np.bincount(flat[start : start + _STATS_CHUNK], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float(counts @ values / n)
    std = float(np.sqrt(counts @ (values - mean) ** 2 / n))
    return mean, std
