"""Softmax cross-entropy as one numerically stable function, and the L2 penalty.

Notation: ``z`` are the logits (batch, k), ``y`` the integer labels (batch,),
``p = softmax(z)``. The mean loss is ``L = mean_i(logsumexp(z_i) - z_i[y_i])``,
computed with the row maximum subtracted first, and its gradient is
``dL/dz = (p - onehot(y)) / batch``.
"""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(
    logits: np.ndarray, y: np.ndarray, grad_out: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of ``logits`` against ``y`` and its gradient.

    Parameters
    ----------
    logits:
        (batch, k) float array; not modified.
    y:
        (batch,) integer labels in ``[0, k)``.
    grad_out:
        Optional (batch, k) buffer of ``logits``' dtype that receives the gradient.

    Returns
    -------
    loss:
        The mean cross-entropy in nats, as a Python float (accumulated in float64).
    grad:
        (batch, k) gradient of the mean loss with respect to ``logits``
        (``grad_out`` when given).
    """
    n = logits.shape[0]
    g = np.empty_like(logits) if grad_out is None else grad_out
    rows = np.arange(n)
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=g)  # shifted logits, max 0
    picked = g[rows, y]  # shifted logit of the true class (a copy)
    np.exp(g, out=g)
    sums = g.sum(axis=1, keepdims=True)  # in [1, k]: no overflow, no log(0)
    loss = float(np.mean(np.log(sums[:, 0]) - picked, dtype=np.float64))
    np.divide(g, sums, out=g)  # softmax
    g[rows, y] -= 1
    np.multiply(g, g.dtype.type(1.0 / n), out=g)
    return loss, g


def cross_entropy_sum(logits: np.ndarray, y: np.ndarray) -> float:
    """Summed (not mean) softmax cross-entropy of (batch, k) ``logits``; float64 accumulation."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(axis=1))
    return float(np.sum(lse - shifted[np.arange(logits.shape[0]), y], dtype=np.float64))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (batch, k) ``logits``; rows sum to one, same dtype."""
    p = logits - logits.max(axis=1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    return p


def l2_penalty(weights: list[np.ndarray], weight_decay: float) -> float:
    """``weight_decay / 2 * sum ||W||^2`` over the weight matrices (biases are not decayed)."""
    if weight_decay == 0.0:
        return 0.0
    total = sum(float(np.vdot(w, w)) for w in weights)
    return 0.5 * weight_decay * total
