"""Minibatches made in the training thread or one step ahead: the same draws, the same batches."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from nn.batches import Batches
from nn.errors import InputError
from nn.model import MLP
from nn.train import TrainConfig, train


def _noisy(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An augmentation that draws from the generator (as the real ones do)."""
    return xb + rng.standard_normal(xb.shape, dtype=np.float32)


def _epochs(batches: Batches, seed: int, epochs: int = 2) -> list[tuple[np.ndarray, list]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(epochs):
        order, minibatches = batches.epoch(rng)
        out.append((order, [xb.copy() for xb in minibatches]))
    return out


def test_prefetching_makes_the_same_minibatches_in_the_same_order():
    X = np.arange(70 * 3, dtype=np.float32).reshape(70, 3)
    plain = _epochs(Batches(X, 16, _noisy), seed=5)
    ahead = _epochs(Batches(X, 16, _noisy, prefetch=True), seed=5)
    for (order_a, batches_a), (order_b, batches_b) in zip(plain, ahead, strict=True):
        np.testing.assert_array_equal(order_a, order_b)
        assert [b.shape for b in batches_a] == [(16, 3)] * 4 + [(6, 3)]
        for a, b in zip(batches_a, batches_b, strict=True):
            np.testing.assert_array_equal(a, b)
    # the rows are those of the permutation
    order, batches = plain[0]
    rng = np.random.default_rng(5)
    rng.permutation(70)
    first = X[order[:16]] + rng.standard_normal((16, 3), dtype=np.float32)
    np.testing.assert_array_equal(batches[0], first)


def test_prefetching_augments_in_another_thread():
    names = set()

    def where(xb, rng):
        names.add(threading.current_thread().name)
        return xb

    X = np.zeros((40, 2), dtype=np.float32)
    _epochs(Batches(X, 8, where, prefetch=True), seed=0, epochs=1)
    assert names == {"minibatch-prefetch"}


def test_an_augmentation_error_reaches_the_training_thread():
    def broken(xb, rng):
        return xb[:, :1]

    X = np.zeros((40, 2), dtype=np.float32)
    with pytest.raises(InputError, match="augment returned shape"):
        _epochs(Batches(X, 8, broken, prefetch=True), seed=0, epochs=1)
    assert not [t for t in threading.enumerate() if t.name == "minibatch-prefetch"]


def test_leaving_an_epoch_early_stops_the_thread():
    X = np.zeros((400, 2), dtype=np.float32)
    _, minibatches = Batches(X, 8, _noisy, prefetch=True).epoch(np.random.default_rng(0))
    next(minibatches)
    minibatches.close()
    assert not [t for t in threading.enumerate() if t.name == "minibatch-prefetch"]


def test_training_with_prefetching_gives_the_same_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20), dtype=np.float32)
    y = rng.integers(0, 3, 300)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, momentum=0.9)
    models = []
    for prefetch in (False, True):
        r = np.random.default_rng(1)
        model = MLP.create((20, 16, 3), rng=r)
        train(model, X, y, config, rng=r, augment=_noisy, prefetch=prefetch)
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
