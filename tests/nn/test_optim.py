"""Optimizer updates recomputed by hand, compared exactly; the subnormal flush."""

from __future__ import annotations

import numpy as np
import pytest

from nn.backprop import loss_and_gradients
from nn.errors import ConfigError, InputError
from nn.model import MLP
from nn.optim import (
    SGD,
    Adam,
    count_subnormals,
    flush_schedule,
    flush_subnormals,
    make_optimizer,
)

F = np.float32
TINY = np.finfo(np.float32).tiny


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=(4, 3)).astype(F), rng.normal(size=3).astype(F)]
    grads = [[rng.normal(size=p.shape).astype(F) for p in params] for _ in range(3)]
    return params, grads


def test_plain_sgd_by_hand():
    params, grads = _problem()
    expected = [p.copy() for p in params]
    opt = SGD(momentum=0.0)
    for lr, gs in zip([0.1, 0.05, 0.01], grads, strict=True):
        opt.step(params, gs, lr)
        expected = [p - F(lr) * g for p, g in zip(expected, gs, strict=True)]
        for got, want in zip(params, expected, strict=True):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_by_hand(nesterov):
    params, grads = _problem(1)
    mu = 0.9
    expected = [p.copy() for p in params]
    vel = [np.zeros_like(p) for p in params]
    opt = SGD(momentum=mu, nesterov=nesterov)
    for lr, gs in zip([0.1, 0.1, 0.02], grads, strict=True):
        opt.step(params, gs, lr)
        for i, g in enumerate(gs):
            vel[i] = F(mu) * vel[i] - F(lr) * g
            if nesterov:
                expected[i] = expected[i] + (F(mu) * vel[i] - F(lr) * g)
            else:
                expected[i] = expected[i] + vel[i]
        for got, want, v_got, v_want in zip(params, expected, opt.velocities, vel, strict=True):
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(v_got, v_want)
    assert opt.t == 3


def test_nesterov_differs_from_classical_momentum():
    p1, grads = _problem(2)
    p2 = [p.copy() for p in p1]
    a, b = SGD(0.9, nesterov=False), SGD(0.9, nesterov=True)
    for gs in grads:
        a.step(p1, gs, 0.1)
        b.step(p2, gs, 0.1)
    assert not np.array_equal(p1[0], p2[0])


def test_adam_by_hand():
    params, grads = _problem(3)
    b1, b2, eps = 0.9, 0.999, 1e-8
    expected = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    opt = Adam(b1, b2, eps)
    for t, (lr, gs) in enumerate(zip([0.01, 0.01, 0.005], grads, strict=True), start=1):
        opt.step(params, gs, lr)
        lr_t = lr * np.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        for i, g in enumerate(gs):
            m[i] = F(b1) * m[i] + F(1.0 - b1) * g
            v[i] = F(b2) * v[i] + F(1.0 - b2) * (g * g)
            expected[i] = expected[i] - F(lr_t) * (m[i] / (np.sqrt(v[i]) + F(eps)))
        for got, want in zip(params, expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_flush_subnormals_zeroes_only_subnormals():
    a = np.array([0.0, TINY, -TINY, TINY / 2, -TINY / 1000, 1.0, -3e-30, 1e-45], dtype=F)
    assert count_subnormals(a) == 3
    flush_subnormals(a, np.empty_like(a), np.empty(a.shape, dtype=bool))
    np.testing.assert_array_equal(a, np.array([0, TINY, -TINY, 0, 0, 1, -3e-30, 0], dtype=F))
    assert count_subnormals(a) == 0


@pytest.mark.parametrize(
    ("make", "decay"),
    [
        (lambda: SGD(0.9), 0.9),
        (lambda: SGD(0.99, nesterov=True), 0.99),
        (lambda: SGD(0.3), 0.3),
        (lambda: Adam(), 0.9),
    ],
)
def test_decaying_state_never_holds_subnormals(make, decay):
    """Zero gradients after one step: without the flush the buffers would decay into
    the subnormal range; with it neither they nor the weights ever hold one."""
    p = [np.full((50, 20), 0.5, dtype=F)]
    g = [np.full((50, 20), 1e-30, dtype=F)]
    zero = [np.zeros((50, 20), dtype=F)]
    opt = make()
    opt.step(p, g, 0.1)
    shadow = opt.state_buffers()[0].copy()  # what an unflushed buffer does
    saw_subnormal = False
    for _ in range(10000):
        opt.step(p, zero, 0.1)
        shadow *= F(decay)
        saw_subnormal |= count_subnormals(shadow) > 0
        for buf in [*opt.state_buffers(), *p]:
            assert count_subnormals(buf) == 0
    assert saw_subnormal
    assert np.count_nonzero(opt.state_buffers()[0]) == 0


@pytest.mark.parametrize("mu", [0.5, 0.9, 0.99, 0.999])
def test_flush_schedule_keeps_survivors_normal_until_the_next_flush(mu):
    every, threshold = flush_schedule(mu)
    assert every == 8 and TINY <= threshold < 1e-35
    survivor = np.array([threshold], dtype=F)  # the smallest value a flush keeps
    for _ in range(every):
        survivor *= F(mu)
    assert survivor[0] >= TINY


def test_optimizer_rejects_bad_settings_and_inputs():
    with pytest.raises(ConfigError, match="momentum"):
        SGD(momentum=1.0)
    with pytest.raises(ConfigError, match="beta2"):
        Adam(beta2=1.5)
    with pytest.raises(ConfigError, match="optimizer='rmsprop'"):
        make_optimizer("rmsprop")
    opt = SGD(0.9)
    p = [np.zeros(3, dtype=F)]
    with pytest.raises(ConfigError, match="lr"):
        opt.step(p, [np.zeros(3, dtype=F)], float("nan"))
    with pytest.raises(InputError, match="gradient 0"):
        opt.step(p, [np.zeros(4, dtype=F)], 0.1)
    opt.step(p, [np.zeros(3, dtype=F)], 0.1)
    with pytest.raises(InputError, match="changed"):
        opt.step([np.zeros(5, dtype=F)], [np.zeros(5, dtype=F)], 0.1)


def test_real_training_keeps_velocities_free_of_subnormals(mnist_test_set):
    """On real MNIST (pixels in [0, 1]) the velocities of rarely-inked pixels decay
    into the subnormal range after a few hundred steps unless they are flushed."""
    X, y = mnist_test_set
    X, y = X[:2000], y[:2000]
    rng = np.random.default_rng(0)
    start = MLP.create((784, 16, 10), rng=rng)
    runs = {}
    for flushed in (True, False):
        model, opt = start.copy(), SGD(momentum=0.9, flush=flushed)
        order = np.random.default_rng(1)
        worst = 0
        for step in range(1500):
            idx = order.integers(0, len(y), size=32)
            _, gw, gb = loss_and_gradients(
                model.weights, model.biases, model.activation, X[idx], y[idx]
            )
            opt.step(model.parameters(), [gw[0], gb[0], gw[1], gb[1]], 0.1)
            if step % 50 == 49:
                worst = max(worst, *(count_subnormals(v) for v in opt.velocities))
        runs[flushed] = worst
    assert runs[False] > 0
    assert runs[True] == 0
