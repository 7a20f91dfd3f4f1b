"""Small real samples for the network's tests, read straight from the gzip IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest


def read_idx_gz(path: Path, offset: int) -> np.ndarray:
    """The uint8 payload of a gzip IDX file after its ``offset``-byte header."""
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), dtype=np.uint8, offset=offset)


@pytest.fixture(scope="session")
def mnist_test_set(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The real MNIST test set: X (10000, 784) float32 in [0, 1], y (10000,) int64."""
    images = read_idx_gz(mnist_dir / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)
    labels = read_idx_gz(mnist_dir / "t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    assert images.shape == (10000, 784) and labels.shape == (10000,)
    return images.astype(np.float32) / np.float32(255.0), labels


@pytest.fixture(scope="session")
def mnist_sample(mnist_test_set: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The first 100 real MNIST test images and labels."""
    X, y = mnist_test_set
    return X[:100].copy(), y[:100].copy()
