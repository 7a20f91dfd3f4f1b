"""Backpropagation against central finite differences, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from nn.losses import softmax_cross_entropy
from nn.model import MLP

SIZES = (7, 6, 5, 4)  # two hidden layers
EPS = 1e-6


def _numerical_gradient(model: MLP, X, y, weight_decay: float) -> list[np.ndarray]:
    grads = []
    for p in model.parameters():
        g = np.empty_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + EPS
            up = model.loss_and_gradients(X, y, weight_decay=weight_decay)[0]
            flat[i] = old - EPS
            down = model.loss_and_gradients(X, y, weight_decay=weight_decay)[0]
            flat[i] = old
            gflat[i] = (up - down) / (2 * EPS)
        grads.append(g)
    return grads


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_backprop_matches_finite_differences_for_every_parameter(activation, weight_decay):
    rng = np.random.default_rng(3)
    model = MLP.create(SIZES, activation=activation, init="xavier", rng=rng, dtype=np.float64)
    for b in model.biases:  # non-zero biases so their gradients are exercised
        b[:] = rng.normal(0.0, 0.1, size=b.shape)
    X = rng.normal(size=(9, SIZES[0]))
    y = rng.integers(0, SIZES[-1], size=9)
    assert model.dtype == np.float64

    _, gw, gb = model.loss_and_gradients(X, y, weight_decay=weight_decay)
    analytic = [g.copy() for pair in zip(gw, gb, strict=True) for g in pair]
    numeric = _numerical_gradient(model, X, y, weight_decay)

    names = [f"{k}{i}" for i in range(len(SIZES) - 1) for k in ("W", "b")]
    for name, a, n in zip(names, analytic, numeric, strict=True):
        assert a.dtype == np.float64 and a.shape == n.shape
        assert np.linalg.norm(a) > 1e-4, f"{name}: gradient unexpectedly ~0"
        rel = np.linalg.norm(a - n) / (np.linalg.norm(a) + np.linalg.norm(n))
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"


def test_float32_model_computes_in_float32():
    rng = np.random.default_rng(0)
    model = MLP.create(SIZES, rng=rng)
    X = rng.normal(size=(5, SIZES[0])).astype(np.float32)
    loss, gw, gb = model.loss_and_gradients(X, np.array([0, 1, 2, 3, 0]))
    assert np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in [*gw, *gb])
    assert model.predict_proba(X).dtype == np.float32


def test_softmax_cross_entropy_is_stable_and_matches_float64_reference():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(6, 5))
    y = np.array([0, 4, 2, 2, 1, 3])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(6), y]))
    loss, grad = softmax_cross_entropy(logits, y)
    assert loss == pytest.approx(expected, rel=1e-12)
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(grad, (p - onehot) / 6, rtol=1e-12, atol=1e-15)

    huge = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss, grad = softmax_cross_entropy(huge, np.array([0, 1]))
    assert np.isfinite(loss) and np.isfinite(grad).all()
    assert loss == pytest.approx(np.log(2.0) / 2, rel=1e-6)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-7)
