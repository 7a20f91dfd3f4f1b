"""The training step's updates against the reference gradients (``reference.py``) and optimizers."""

from __future__ import annotations

import numpy as np
import pytest

from nn.model import MLP
from nn.optim import SGD, Adam
from nn.step import TrainStep
from tests.nn.reference import cross_entropy, loss_and_gradients


def _one_step(X, y, optimizer, *, lr=0.05, weight_decay=0.0, batch_size=None):
    rng = np.random.default_rng(3)
    model = MLP.create((784, 32, 16, 10), rng=rng)
    before = model.copy()
    step = TrainStep(model, batch_size or X.shape[0], optimizer, weight_decay)
    onehot, flat = step.epoch_labels(y)
    pred = np.full(y.shape[0], -1, dtype=np.intp)
    loss = step(X, onehot, flat, pred, lr)
    return before, model, loss, pred


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_step_matches_reference_gradients(mnist_sample, weight_decay, nesterov):
    X, y = mnist_sample
    X, y = X[:40], y[:40]
    lr, mu = 0.05, 0.9
    before, model, loss, pred = _one_step(
        X, y, SGD(momentum=mu, nesterov=nesterov), lr=lr, weight_decay=weight_decay
    )
    _, gw, gb = loss_and_gradients(before, X, y, weight_decay=weight_decay)
    reference = SGD(momentum=mu, nesterov=nesterov)
    expected = before.copy().parameters()
    reference.step(expected, [gw[0], gb[0], gw[1], gb[1], gw[2], gb[2]], lr)
    for got, want in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert got.dtype == np.float32
    assert not np.array_equal(model.weights[0], before.weights[0])
    # summed cross-entropy, without the L2 penalty; predictions before the update
    assert loss == pytest.approx(cross_entropy(before.logits(X), y)[0] * len(y), rel=1e-5)
    np.testing.assert_array_equal(pred, before.predict(X))


def test_adam_step_receives_the_plain_gradient(mnist_sample):
    X, y = mnist_sample
    X, y = X[:25], y[:25]
    before, model, _, _ = _one_step(X, y, Adam(), lr=1e-3)
    _, gw, gb = loss_and_gradients(before, X, y)
    expected = before.copy().parameters()
    Adam().step(expected, [gw[0], gb[0], gw[1], gb[1], gw[2], gb[2]], 1e-3)
    for got, want in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_short_last_batch_uses_its_own_rows(mnist_sample):
    """An epoch of 100 rows in batches of 64: the second step sees 36 rows at rows 0..35
    of its buffers, and the flat label indices point inside that shorter batch."""
    X, y = mnist_sample
    rng = np.random.default_rng(0)
    model = MLP.create((784, 20, 10), rng=rng)
    reference = model.copy()
    step = TrainStep(model, 64, SGD(momentum=0.0))
    onehot, flat = step.epoch_labels(y)
    np.testing.assert_array_equal(flat[64:], np.arange(36) * 10 + y[64:])
    np.testing.assert_array_equal(onehot.argmax(axis=1), y)
    assert onehot.sum() == 100
    pred = np.empty(100, dtype=np.intp)
    for s in (slice(0, 64), slice(64, 100)):
        step(X[s], onehot[s], flat[s], pred[s], 0.1)
        _, gw, gb = loss_and_gradients(reference, X[s], y[s])
        SGD(momentum=0.0).step(reference.parameters(), [gw[0], gb[0], gw[1], gb[1]], 0.1)
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
