"""A plain reference implementation of the network's maths, for the tests only.

Written for reading, not speed: every array is freshly allocated, each layer's
forward step sits beside its gradient, and nothing is shared with ``nn`` but the
model's parameters (the activations, the loss and the L2 penalty are written out
again here). The fused training step (:mod:`nn.step`, :mod:`nn.backprop`,
:mod:`nn.losses`) is checked against these functions, and these functions are
checked against finite differences (``test_gradients.py``).

Notation: ``a_{-1} = X`` (m, d), ``z_i = a_{i-1} W_i + b_i``, ``a_i = f(z_i)`` for the
hidden layers, ``z_{L-1}`` the logits (m, k); the objective of a batch is
``mean_rows(logsumexp(z) - z[y]) + lambda / 2 * sum_i ||W_i||^2``.
"""

from __future__ import annotations

import numpy as np

from nn.model import MLP


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """``f(z)`` for the hidden activation ``name``, (m, n) -> (m, n)."""
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    raise ValueError(f"unknown activation {name!r}")


def activation_gradient(name: str, a: np.ndarray) -> np.ndarray:
    """``f'(z)`` (m, n) expressed through the output ``a = f(z)`` (m, n)."""
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "tanh":
        return 1 - a**2
    if name == "sigmoid":
        return a * (1 - a)
    raise ValueError(f"unknown activation {name!r}")


def forward(model: MLP, X: np.ndarray) -> list[np.ndarray]:
    """``[X, a_0, ..., a_{L-2}, logits]``: the input (m, d), each hidden layer's output
    (m, n_i) and the logits (m, k), in the model's dtype."""
    outputs = [np.asarray(X, dtype=model.dtype)]
    last = len(model.weights) - 1
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        z = outputs[-1] @ w + b
        outputs.append(z if i == last else activate(model.activation, z))
    return outputs


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits`` (m, k) against ``y`` (m,), and its
    gradient (m, k) with respect to the logits: ``(softmax(logits) - onehot(y)) / m``."""
    m = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(np.mean(log_p[np.arange(m), y], dtype=np.float64))
    grad = np.exp(log_p)
    grad[np.arange(m), y] -= 1
    return loss, grad / m


def backward(
    model: MLP, outputs: list[np.ndarray], dlogits: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Gradients of the weights (n_in, n_out) and biases (n_out,), layer by layer, from the
    :func:`forward` ``outputs`` and the gradient ``dlogits`` (m, k) of the loss."""
    n_layers = len(model.weights)
    grads_w: list[np.ndarray] = [np.empty(0)] * n_layers
    grads_b: list[np.ndarray] = [np.empty(0)] * n_layers
    delta = dlogits
    for i in range(n_layers - 1, -1, -1):
        a_prev = outputs[i]
        grads_w[i] = a_prev.T @ delta
        grads_b[i] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ model.weights[i].T) * activation_gradient(model.activation, a_prev)
    return grads_w, grads_b


def loss_and_gradients(
    model: MLP, X: np.ndarray, y: np.ndarray, *, weight_decay: float = 0.0
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """The objective of the batch ``X`` (m, d), ``y`` (m,) and its gradients with respect to
    every weight (n_in, n_out) and bias (n_out,); the biases are not decayed."""
    outputs = forward(model, X)
    loss, dlogits = cross_entropy(outputs[-1], np.asarray(y))
    grads_w, grads_b = backward(model, outputs, dlogits)
    grads_w = [
        g + model.dtype.type(weight_decay) * w for g, w in zip(grads_w, model.weights, strict=True)
    ]
    penalty = 0.5 * weight_decay * sum(float(np.vdot(w, w)) for w in model.weights)
    return loss + penalty, grads_w, grads_b
