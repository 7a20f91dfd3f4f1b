"""The network's maths, written to be read: forward pass, backpropagation, SGD step.

Start here. Every array is new, every line is one equation below. Inference
(:meth:`nn.model.MLP.logits` and the methods built on it) runs :func:`forward`;
training runs a fused version of :func:`sgd_step` over buffers allocated once
(:mod:`nn.step`), which the tests check equal to these functions, and these
functions against finite differences.

Notation, for a batch of ``m`` rows, layers ``i = 0 .. L-1`` and ``k`` classes::

    a_{-1} = X                                   (m, d)
    z_i    = a_{i-1} W_i + b_i                   (m, n_i);  W_i (n_{i-1}, n_i), b_i (n_i,)
    a_i    = f(z_i)                              hidden layers i < L-1
    z_{L-1}                                      the logits (m, k)
    J      = mean_r l_r + lambda / 2 * sum_i ||W_i||^2

where ``l_r`` is the softmax cross-entropy of row ``r`` (:mod:`nn.losses`). Backward,
with ``delta_i = dJ/dz_i``::

    delta_{L-1} = (softmax(z_{L-1}) - onehot(y)) / m
    dJ/dW_i     = a_{i-1}^T delta_i + lambda W_i        dJ/db_i = sum_r delta_i
    delta_{i-1} = (delta_i W_i^T) * f'(z_{i-1})

The biases are not decayed. SGD with momentum ``mu``, rate ``eta``, velocity ``v``
(zero at first), for every parameter ``p`` with gradient ``g``::

    v <- mu v - eta g
    p <- p + v                       (classical)
    p <- p + mu v - eta g            (Nesterov, in the form of Sutskever et al. 2013)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nn.activations import get_activation
from nn.errors import ConfigError
from nn.losses import cross_entropy, softmax


def forward(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activation: str, X: np.ndarray
) -> list[np.ndarray]:
    """Run the network on a batch.

    Parameters
    ----------
    weights, biases:
        ``W_i`` (n_{i-1}, n_i) and ``b_i`` (n_i,), one float dtype.
    activation:
        The hidden activation ``f`` by name (:data:`nn.activations.ACTIVATIONS`).
    X:
        (m, d) inputs in the parameters' dtype.

    Returns
    -------
    list of numpy.ndarray
        ``[X, a_0, ..., a_{L-2}, z_{L-1}]``: the input, each hidden layer's output
        (m, n_i) and the logits (m, k).
    """
    f = get_activation(activation).f
    outputs = [X]
    last = len(weights) - 1
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        z = outputs[-1] @ W + b
        outputs.append(z if i == last else f(z))
    return outputs


def backward(
    weights: Sequence[np.ndarray], activation: str, outputs: list[np.ndarray], delta: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Backpropagate ``delta`` = dJ/dz_{L-1} (m, k) through the network.

    Parameters
    ----------
    weights, activation:
        As for :func:`forward`.
    outputs:
        What :func:`forward` returned for this batch.
    delta:
        The gradient of the loss with respect to the logits (m, k).

    Returns
    -------
    grads_w, grads_b
        Per layer, dJ/dW_i (n_{i-1}, n_i) and dJ/db_i (n_i,), without weight decay.
    """
    df = get_activation(activation).df
    n_layers = len(weights)
    grads_w: list[np.ndarray] = [np.empty(0)] * n_layers
    grads_b: list[np.ndarray] = [np.empty(0)] * n_layers
    for i in reversed(range(n_layers)):
        a_prev = outputs[i]  # a_{i-1}; outputs[0] is X
        grads_w[i] = a_prev.T @ delta
        grads_b[i] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ weights[i].T) * df(a_prev)
    return grads_w, grads_b


def loss_and_gradients(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: str,
    X: np.ndarray,
    y: np.ndarray,
    weight_decay: float = 0.0,
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """The objective ``J`` of the batch ``X`` (m, d), ``y`` (m,) and its gradients.

    Returns
    -------
    J, grads_w, grads_b
        ``J`` (float, nats, with the L2 penalty ``weight_decay / 2 * sum ||W_i||^2``),
        dJ/dW_i (n_{i-1}, n_i) and dJ/db_i (n_i,) in the parameters' dtype.
    """
    m = X.shape[0]
    outputs = forward(weights, biases, activation, X)
    logits = outputs[-1]
    delta = softmax(logits)
    delta[np.arange(m), y] -= 1
    delta /= m
    grads_w, grads_b = backward(weights, activation, outputs, delta)
    lam = weights[0].dtype.type(weight_decay)
    grads_w = [g + lam * W for g, W in zip(grads_w, weights, strict=True)]
    penalty = 0.5 * weight_decay * sum(float(np.vdot(W, W)) for W in weights)
    return float(np.mean(cross_entropy(logits, y), dtype=np.float64)) + penalty, grads_w, grads_b


def sgd_step(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    activation: str,
    X: np.ndarray,
    y: np.ndarray,
    lr: float,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    nesterov: bool = False,
    velocities: list[np.ndarray] | None = None,
) -> float:
    """One step of minibatch SGD on ``X`` (m, d), ``y`` (m,); updates the parameters in place.

    ``velocities`` holds ``v`` for ``[W_0, b_0, W_1, b_1, ...]`` (zeros before the first
    step), updated in place; it is needed when ``momentum > 0``. Returns ``J`` before
    the update.
    """
    if momentum and velocities is None:
        raise ConfigError(f"momentum={momentum} needs the velocities of the previous steps")
    J, grads_w, grads_b = loss_and_gradients(weights, biases, activation, X, y, weight_decay)
    params = [p for pair in zip(weights, biases, strict=True) for p in pair]
    grads = [g for pair in zip(grads_w, grads_b, strict=True) for g in pair]
    for j, (p, g) in enumerate(zip(params, grads, strict=True)):
        if momentum == 0.0:
            p -= lr * g
            continue
        v = velocities[j]
        v[...] = momentum * v - lr * g
        p += momentum * v - lr * g if nesterov else v
    return J
