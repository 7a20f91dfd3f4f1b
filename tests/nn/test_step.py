"""The fused training step against the readable maths of :mod:`nn.backprop`.

Float32 on real MNIST rows: the fused step and the readable functions make the same
float operations in other orders (the products blocked differently, the factor
``1/m`` applied before or after backpropagation), so their results agree to a few
float32 roundings of the largest terms, relative 1e-5 with an absolute floor of
1e-7 for entries near zero; a wrong term (a missing ``1/m``, a missing weight
decay, a wrong sign) moves an entry by far more than that.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.backprop import loss_and_gradients, sgd_step
from nn.losses import cross_entropy
from nn.model import MLP
from nn.optim import SGD, Adam
from nn.step import TrainStep

RTOL, ATOL = 1e-5, 1e-7


def _steps(model, X, y, optimizer, lrs, *, weight_decay=0.0, batch_size=None):
    """Run :class:`TrainStep` on ``X``, ``y`` once per rate in ``lrs``; returns the step
    (its gradient buffers) and the losses and predictions of the last step."""
    step = TrainStep(model, batch_size or X.shape[0], optimizer, weight_decay)
    onehot, flat = step.epoch_labels(y)
    pred = np.full(y.shape[0], -1, dtype=np.intp)
    for lr in lrs:
        loss = step(X, onehot, flat, pred, lr)
    return step, loss, pred


def _grads(model, X, y, weight_decay=0.0):
    return loss_and_gradients(model.weights, model.biases, model.activation, X, y, weight_decay)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.9, False), (0.9, True)])
def test_fused_sgd_steps_equal_the_readable_sgd_step(
    mnist_sample, weight_decay, momentum, nesterov
):
    """Three steps (so the velocities carry over) with rates that change between steps."""
    X, y = mnist_sample
    X, y = X[:40], y[:40]
    lrs = [0.05, 0.02, 0.01]
    model = MLP.create((784, 32, 16, 10), rng=np.random.default_rng(3))
    readable = model.copy()
    optimizer = SGD(momentum=momentum, nesterov=nesterov)
    _steps(model, X, y, optimizer, lrs, weight_decay=weight_decay)
    velocities = [np.zeros_like(p) for p in readable.parameters()]
    for lr in lrs:
        sgd_step(
            readable.weights, readable.biases, readable.activation, X, y, lr,
            weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            velocities=velocities,
        )  # fmt: skip
    for got, want in zip(model.parameters(), readable.parameters(), strict=True):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    if momentum:
        for got, want in zip(optimizer.velocities, velocities, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=ATOL)


@pytest.mark.parametrize("optimizer", [SGD(momentum=0.9), Adam()], ids=["sgd", "adam"])
def test_grads_w_is_the_gradient_whatever_the_optimizer_and_rate(mnist_sample, optimizer):
    X, y = mnist_sample
    X, y = X[:25], y[:25]
    model = MLP.create((784, 32, 10), rng=np.random.default_rng(1))
    before = model.copy()
    step, loss, pred = _steps(model, X, y, optimizer, [0.3], weight_decay=0.01)
    _, gw, gb = _grads(before, X, y, weight_decay=0.01)
    for got, want in zip(step.grads_w + step.grads_b, gw + gb, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # summed cross-entropy, without the L2 penalty; predictions before the update
    assert loss == pytest.approx(float(cross_entropy(before.logits(X), y).sum()), rel=1e-5)
    np.testing.assert_array_equal(pred, before.predict(X))


def test_adam_step_receives_the_plain_gradient(mnist_sample):
    X, y = mnist_sample
    X, y = X[:25], y[:25]
    model = MLP.create((784, 32, 16, 10), rng=np.random.default_rng(3))
    before = model.copy()
    _steps(model, X, y, Adam(), [1e-3])
    _, gw, gb = _grads(before, X, y)
    expected = before.copy().parameters()
    Adam().step(expected, [gw[0], gb[0], gw[1], gb[1], gw[2], gb[2]], 1e-3)
    for got, want in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_short_last_batch_uses_its_own_rows(mnist_sample):
    """An epoch of 100 rows in batches of 64: the second step sees 36 rows at rows 0..35
    of its buffers, and the flat label indices point inside that shorter batch."""
    X, y = mnist_sample
    model = MLP.create((784, 20, 10), rng=np.random.default_rng(0))
    readable = model.copy()
    step = TrainStep(model, 64, SGD(momentum=0.0))
    onehot, flat = step.epoch_labels(y)
    np.testing.assert_array_equal(flat[64:], np.arange(36) * 10 + y[64:])
    np.testing.assert_array_equal(onehot.argmax(axis=1), y)
    assert onehot.sum() == 100
    pred = np.empty(100, dtype=np.intp)
    for s in (slice(0, 64), slice(64, 100)):
        step(X[s], onehot[s], flat[s], pred[s], 0.1)
        sgd_step(readable.weights, readable.biases, readable.activation, X[s], y[s], 0.1)
    for got, want in zip(model.parameters(), readable.parameters(), strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
