"""Gradients: the readable backprop against finite differences, the fused step against it.

Both in float64 on a small network with two hidden layers, for every activation,
with and without weight decay; plus the loss functions of ``nn.losses`` on their own.
"""

from __future__ import annotations

import numpy as np
import pytest

from nn.backprop import loss_and_gradients
from nn.losses import cross_entropy, softmax, softmax_cross_entropy
from nn.model import MLP
from nn.optim import SGD
from nn.step import TrainStep

SIZES = (7, 6, 5, 4)  # two hidden layers
EPS = 1e-6
NAMES = [f"{k}{i}" for i in range(len(SIZES) - 1) for k in ("W", "b")]


def _problem(activation: str) -> tuple[MLP, np.ndarray, np.ndarray]:
    """A float64 network with non-zero biases (so their gradients are exercised) and a batch."""
    rng = np.random.default_rng(3)
    model = MLP.create(SIZES, activation=activation, init="xavier", rng=rng, dtype=np.float64)
    for b in model.biases:
        b[:] = rng.normal(0.0, 0.1, size=b.shape)
    X = rng.normal(size=(9, SIZES[0]))
    y = rng.integers(0, SIZES[-1], size=9)
    return model, X, y


def _readable(model: MLP, X, y, weight_decay: float):
    return loss_and_gradients(model.weights, model.biases, model.activation, X, y, weight_decay)


def _flat_labels(y: np.ndarray, k: int) -> np.ndarray:
    return np.arange(len(y)) * k + y


def _numerical_gradient(model: MLP, X, y, weight_decay: float) -> list[np.ndarray]:
    def objective() -> float:
        return _readable(model, X, y, weight_decay)[0]

    grads = []
    for p in model.parameters():
        g = np.empty_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + EPS
            up = objective()
            flat[i] = old - EPS
            down = objective()
            flat[i] = old
            gflat[i] = (up - down) / (2 * EPS)
        grads.append(g)
    return grads


def fused_loss_and_gradients(
    model: MLP, X: np.ndarray, y: np.ndarray, weight_decay: float = 0.0
) -> tuple[float, list[np.ndarray]]:
    """The objective and gradients ``[dW_0, db_0, ...]`` as the training step computes them.

    One :class:`TrainStep` with momentum SGD at rate 0.5 on a copy of ``model``: its
    gradient buffers hold the gradient of the objective (whatever the optimizer and the
    rate), and its return value is the summed cross-entropy.
    """
    m = X.shape[0]
    step = TrainStep(model.copy(), m, SGD(momentum=0.9), weight_decay)
    onehot, flat = step.epoch_labels(y)
    loss_sum = step(X, onehot, flat, np.empty(m, dtype=np.intp), 0.5)
    penalty = 0.5 * weight_decay * sum(float(np.vdot(w, w)) for w in model.weights)
    grads = [g.copy() for pair in zip(step.grads_w, step.grads_b, strict=True) for g in pair]
    return loss_sum / m + penalty, grads


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_readable_backprop_matches_finite_differences(activation, weight_decay):
    model, X, y = _problem(activation)
    _, gw, gb = _readable(model, X, y, weight_decay)
    analytic = [g for pair in zip(gw, gb, strict=True) for g in pair]
    numeric = _numerical_gradient(model, X, y, weight_decay)
    for name, a, n in zip(NAMES, analytic, numeric, strict=True):
        assert a.dtype == np.float64 and a.shape == n.shape
        assert np.linalg.norm(a) > 1e-4, f"{name}: gradient unexpectedly ~0"
        rel = np.linalg.norm(a - n) / (np.linalg.norm(a) + np.linalg.norm(n))
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fused_step_gradients_equal_the_readable_ones(activation, weight_decay):
    """Same maths, other summation orders: equal to float64 rounding (sums of a few dozen
    terms, each rounding about 1e-16 relative), far below the 1e-6 that a wrong term (a
    missing factor, a transposed product) would exceed."""
    model, X, y = _problem(activation)
    loss, fused = fused_loss_and_gradients(model, X, y, weight_decay)
    ref_loss, gw, gb = _readable(model, X, y, weight_decay)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    ref = [g for pair in zip(gw, gb, strict=True) for g in pair]
    for name, got, want in zip(NAMES, fused, ref, strict=True):
        assert got.dtype == np.float64 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14, err_msg=name)


def test_float32_model_computes_in_float32(mnist_sample):
    X, y = mnist_sample
    X, y = X[:32], y[:32]
    model = MLP.create((784, 20, 10), rng=np.random.default_rng(0))
    loss, fused = fused_loss_and_gradients(model, X, y, weight_decay=0.01)
    assert all(g.dtype == np.float32 for g in fused)
    ref_loss, gw, gb = _readable(model, X, y, 0.01)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    ref = [g for pair in zip(gw, gb, strict=True) for g in pair]
    for got, want in zip(fused, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert model.predict_proba(X).dtype == np.float32


def test_softmax_cross_entropy_is_stable_and_matches_float64_reference():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(6, 5))
    y = np.array([0, 4, 2, 2, 1, 3])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = -np.sum(np.log(p[np.arange(6), y]))
    out = np.empty_like(logits)
    loss = softmax_cross_entropy(logits, _flat_labels(y, 5), out)
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(out, p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(softmax(logits), p, rtol=1e-12, atol=1e-15)
    assert cross_entropy(logits, y).sum() == pytest.approx(expected, rel=1e-12)
    in_place = logits.copy()  # the probabilities may overwrite the logits
    assert softmax_cross_entropy(in_place, _flat_labels(y, 5), in_place) == loss
    np.testing.assert_array_equal(in_place, out)

    huge = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4]], dtype=np.float32)
    out = np.empty_like(huge)
    loss = softmax_cross_entropy(huge, _flat_labels(np.array([0, 1]), 3), out)
    assert np.isfinite(loss) and np.isfinite(out).all() and out.dtype == np.float32
    assert loss == pytest.approx(np.log(2.0), rel=1e-6)
    assert cross_entropy(huge, np.array([0, 1])).sum() == pytest.approx(np.log(2.0), rel=1e-6)
    np.testing.assert_allclose(out, [[1, 0, 0], [0, 0.5, 0.5]], atol=1e-7)
