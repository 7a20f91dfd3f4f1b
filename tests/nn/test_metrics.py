"""Accuracy and confusion matrix against explicit counting."""

from __future__ import annotations

import numpy as np
import pytest

from nn.errors import InputError
from nn.metrics import accuracy, confusion_matrix


def test_accuracy_and_confusion_matrix_by_counting(mnist_test_set):
    _, y = mnist_test_set
    rng = np.random.default_rng(0)
    pred = np.where(rng.random(y.size) < 0.8, y, rng.integers(0, 10, size=y.size))
    assert accuracy(y, pred) == np.count_nonzero(y == pred) / y.size
    cm = confusion_matrix(y, pred, 10)
    expected = np.zeros((10, 10), dtype=np.int64)
    for t, p in zip(y.tolist(), pred.tolist(), strict=True):
        expected[t, p] += 1
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == y.size and np.trace(cm) == np.count_nonzero(y == pred)


def test_confusion_matrix_keeps_absent_classes():
    cm = confusion_matrix(np.array([0, 0, 2]), np.array([0, 2, 2]), 4)
    np.testing.assert_array_equal(cm, [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert accuracy(np.array([1, 2]), np.array([1, 2])) == 1.0


def test_metrics_reject_bad_inputs():
    with pytest.raises(InputError, match="equal length"):
        accuracy(np.array([1, 2]), np.array([1]))
    with pytest.raises(InputError, match="empty"):
        accuracy(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(InputError, match="y_pred must hold integer"):
        accuracy(np.array([1]), np.array([1.0]))
    with pytest.raises(InputError, match="y_pred holds labels outside"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), 3)
    with pytest.raises(InputError, match="n_classes"):
        confusion_matrix(np.array([0]), np.array([0]), 0)
