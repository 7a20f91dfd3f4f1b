"""Vectorised forward pass and backpropagation over preallocated buffers.

Notation (layer ``i = 0 .. L-1``): ``a_{-1} = X`` (batch, d), ``z_i = a_{i-1} W_i + b_i``,
``a_i = f(z_i)`` for hidden layers and ``z_{L-1}`` are the logits. Backward,
with ``delta_i = dLoss/dz_i``::

    dW_i = a_{i-1}^T delta_i        db_i = sum_rows(delta_i)
    delta_{i-1} = (delta_i W_i^T) * f'(z_{i-1})

The gradient with respect to the input ``X`` is never formed (it is not needed
and would be the largest matrix product of the backward pass).

A :class:`Workspace` holds every intermediate array for up to ``capacity``
rows, so a training step allocates nothing of size proportional to the batch;
smaller batches use leading row views of the same buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nn.activations import Activation


@dataclass
class Workspace:
    """Buffers for one network shape, batch size and dtype.

    Attributes
    ----------
    capacity:
        Largest number of rows a batch may have.
    outputs:
        Per layer, (capacity, n_out): hidden activations ``a_l``, then the logits.
    deltas:
        Per layer, (capacity, n_out): gradients with respect to ``z_l``.
    scratch:
        Per hidden layer, (capacity, n_out): room for the activation derivative.
    grads_w, grads_b:
        Per layer, gradients of the weights (n_in, n_out) and biases (n_out,).
    """

    capacity: int
    outputs: list[np.ndarray]
    deltas: list[np.ndarray]
    scratch: list[np.ndarray]
    grads_w: list[np.ndarray]
    grads_b: list[np.ndarray]

    @classmethod
    def create(cls, layer_sizes: Sequence[int], capacity: int, dtype=np.float32) -> Workspace:
        """Allocate buffers for ``layer_sizes`` and batches of up to ``capacity`` rows."""
        outs = list(layer_sizes[1:])
        return cls(
            capacity=capacity,
            outputs=[np.empty((capacity, n), dtype=dtype) for n in outs],
            deltas=[np.empty((capacity, n), dtype=dtype) for n in outs],
            scratch=[np.empty((capacity, n), dtype=dtype) for n in outs[:-1]],
            grads_w=[
                np.empty((n_in, n_out), dtype=dtype)
                for n_in, n_out in zip(layer_sizes[:-1], outs, strict=True)
            ],
            grads_b=[np.empty(n, dtype=dtype) for n in outs],
        )


def forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: Activation,
    X: np.ndarray,
    ws: Workspace,
) -> np.ndarray:
    """Run the network on ``X`` (m, d) with m <= capacity; returns the logits view (m, k).

    The hidden activations are left in ``ws.outputs`` for :func:`backward`.
    """
    m = X.shape[0]
    a = X
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = ws.outputs[i][:m]
        np.matmul(a, w, out=z)
        np.add(z, b, out=z)
        if i < last:
            activation.forward(z)
        a = z
    return a


def backward(
    weights: Sequence[np.ndarray],
    activation: Activation,
    X: np.ndarray,
    dlogits: np.ndarray,
    ws: Workspace,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Backpropagate ``dlogits`` (m, k) through the network last run by :func:`forward` on ``X``.

    ``dlogits`` may be ``ws.deltas[-1][:m]``. Returns ``(ws.grads_w, ws.grads_b)``,
    filled with the gradients of the loss with respect to every weight and bias.
    """
    m = X.shape[0]
    delta = dlogits
    for i in range(len(weights) - 1, -1, -1):
        a_prev = X if i == 0 else ws.outputs[i - 1][:m]
        np.matmul(a_prev.T, delta, out=ws.grads_w[i])
        np.sum(delta, axis=0, out=ws.grads_b[i])
        if i > 0:
            d_prev = ws.deltas[i - 1][:m]
            np.matmul(delta, weights[i].T, out=d_prev)
            activation.backward(d_prev, a_prev, ws.scratch[i - 1][:m])
            delta = d_prev
    return ws.grads_w, ws.grads_b
