"""The network's forward pass and backpropagation, over buffers allocated once.

This is the one implementation of both passes: training (:mod:`nn.step`) and
inference (:meth:`nn.model.MLP.logits` and the methods built on it) call it.

Notation (layer ``i = 0 .. L-1``): ``a_{-1} = X`` (m, d), ``z_i = a_{i-1} W_i + b_i``,
``a_i = f(z_i)`` for hidden layers and ``z_{L-1}`` are the logits. Backward,
with ``delta_i = dLoss/dz_i``::

    dW_i = a_{i-1}^T delta_i        db_i = sum_rows(delta_i)
    delta_{i-1} = (delta_i W_i^T) * f'(z_{i-1})

The gradient with respect to the input ``X`` is never formed (it is not needed
and would be the largest matrix product of the backward pass).

A :class:`Workspace` holds every intermediate array for batches of up to
``capacity`` rows; :meth:`Workspace.rows` hands out row views for a batch of
``m`` rows, made once per ``m``, so a training step allocates and slices nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nn.activations import Activation


class Rows(NamedTuple):
    """Row views of a :class:`Workspace` for one batch of ``m`` rows.

    Attributes
    ----------
    outputs:
        Per layer, (m, n_out): hidden activations ``a_i``, then the logits.
    deltas:
        Per layer, (m, n_out): gradients with respect to ``z_i``; the last one is
        where the loss writes its gradient. Empty without backward buffers.
    scratch:
        Per hidden layer, (m, n_out): room for the activation derivative. Empty
        without backward buffers.
    rowmax, sums:
        (m, 1): row maxima of the logits and row sums of ``exp(z - rowmax)``.
    rowloss:
        (m,): the cross-entropy of each row.
    """

    outputs: list[np.ndarray]
    deltas: list[np.ndarray]
    scratch: list[np.ndarray]
    rowmax: np.ndarray
    sums: np.ndarray
    rowloss: np.ndarray


class Workspace:
    """Buffers for one network shape, batch capacity and dtype.

    Parameters
    ----------
    layer_sizes:
        (n_inputs, hidden..., n_classes).
    capacity:
        Largest number of rows a batch may have.
    dtype:
        The network's float dtype.
    backward:
        Also allocate the buffers of the backward pass (not needed for inference).
    """

    def __init__(
        self, layer_sizes: Sequence[int], capacity: int, dtype: np.dtype, *, backward: bool = True
    ) -> None:
        outs = list(layer_sizes[1:])
        self.capacity = capacity
        self._full = Rows(
            outputs=[np.empty((capacity, n), dtype=dtype) for n in outs],
            deltas=[np.empty((capacity, n), dtype=dtype) for n in outs] if backward else [],
            scratch=[np.empty((capacity, n), dtype=dtype) for n in outs[:-1]] if backward else [],
            rowmax=np.empty((capacity, 1), dtype=dtype),
            sums=np.empty((capacity, 1), dtype=dtype),
            rowloss=np.empty(capacity, dtype=dtype),
        )
        self._views: dict[int, Rows] = {capacity: self._full}

    def rows(self, m: int) -> Rows:
        """The leading ``m`` rows (``m <= capacity``) of every buffer, made once per ``m``."""
        v = self._views.get(m)
        if v is None:
            f = self._full
            v = self._views[m] = Rows(
                [o[:m] for o in f.outputs],
                [d[:m] for d in f.deltas],
                [s[:m] for s in f.scratch],
                f.rowmax[:m],
                f.sums[:m],
                f.rowloss[:m],
            )
        return v


def forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: Activation,
    X: np.ndarray,
    rows: Rows,
) -> np.ndarray:
    """Run the network on ``X`` (m, d); returns the logits, a view (m, k) of ``rows.outputs[-1]``.

    ``X`` has the weights' dtype and is not modified; ``rows`` comes from
    :meth:`Workspace.rows` with the same ``m``. The hidden activations stay in
    ``rows.outputs`` for :func:`backward`.
    """
    outputs = rows.outputs
    last = len(weights) - 1
    a = X
    for i in range(last + 1):  # z_i = a_{i-1} W_i + b_i, a_i = f(z_i) in place
        z = outputs[i]
        np.matmul(a, weights[i], out=z)
        np.add(z, biases[i], out=z)
        if i < last:
            activation.forward(z)
        a = z
    return a


def backward(
    weights: Sequence[np.ndarray],
    activation: Activation,
    X: np.ndarray,
    rows: Rows,
    grads_w: Sequence[np.ndarray],
    grads_b: Sequence[np.ndarray],
) -> None:
    """Backpropagate ``rows.deltas[-1]`` (m, k) through the network :func:`forward` last ran.

    ``X`` (m, d) is the input of that forward pass. Fills ``grads_w`` (per layer
    (n_in, n_out)) and ``grads_b`` (per layer (n_out,)) with the gradients of the loss
    whose gradient with respect to the logits is ``rows.deltas[-1]``; overwrites the
    other deltas.
    """
    outputs, deltas, scratch = rows.outputs, rows.deltas, rows.scratch
    delta = deltas[-1]
    for i in range(len(weights) - 1, -1, -1):  # dW_i = a_{i-1}^T delta_i, db_i = sum(delta_i)
        a_prev = X if i == 0 else outputs[i - 1]
        np.matmul(a_prev.T, delta, out=grads_w[i])
        np.sum(delta, axis=0, out=grads_b[i])
        if i > 0:
            d_prev = deltas[i - 1]
            np.matmul(delta, weights[i].T, out=d_prev)
            activation.backward(d_prev, a_prev, scratch[i - 1])
            delta = d_prev
