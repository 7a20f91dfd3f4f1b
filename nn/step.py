"""The fused training step: :func:`nn.backprop.sgd_step`'s maths over buffers allocated once.

The same forward pass, loss, backward pass and update as :mod:`nn.backprop` (and its
notation), written for speed; the tests check the two equal. Every intermediate array
is allocated once (:class:`Rows`) and written in place (``out=``); the labels arrive as
an epoch-wide one-hot matrix and flat indices (:meth:`TrainStep.epoch_labels`); the
gradient with respect to the input ``X`` is never formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from nn.activations import Activation, get_activation
from nn.losses import softmax_cross_entropy
from nn.model import MLP
from nn.optim import Optimizer


class Rows(NamedTuple):
    """The buffers of one training step for a batch of ``m`` rows.

    ``outputs`` and ``deltas``: per layer, (m, n_out), ``a_i`` (then the logits) and
    dJ/dz_i; ``scratch``: per hidden layer, (m, n_out), for ``f'``; ``rowmax``, ``sums``
    (m, 1) and ``rowloss`` (m,): the loss's buffers (:func:`nn.losses.softmax_cross_entropy`).
    """

    outputs: list[np.ndarray]
    deltas: list[np.ndarray]
    scratch: list[np.ndarray]
    rowmax: np.ndarray
    sums: np.ndarray
    rowloss: np.ndarray

    @classmethod
    def allocate(cls, layer_sizes: Sequence[int], m: int, dtype: np.dtype) -> Rows:
        """New buffers for ``m`` rows of a network of ``layer_sizes``, in ``dtype``."""
        outs = layer_sizes[1:]
        return cls(
            outputs=[np.empty((m, n), dtype=dtype) for n in outs],
            deltas=[np.empty((m, n), dtype=dtype) for n in outs],
            scratch=[np.empty((m, n), dtype=dtype) for n in outs[:-1]],
            rowmax=np.empty((m, 1), dtype=dtype),
            sums=np.empty((m, 1), dtype=dtype),
            rowloss=np.empty(m, dtype=dtype),
        )

    def head(self, m: int) -> Rows:
        """Views of the leading ``m`` rows of every buffer."""
        return Rows(*([a[:m] for a in f] if isinstance(f, list) else f[:m] for f in self))


def _forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: Activation,
    X: np.ndarray,
    rows: Rows,
) -> np.ndarray:
    """:func:`nn.backprop.forward` into ``rows.outputs``; returns the logits (m, k), a view."""
    outputs = rows.outputs
    last = len(weights) - 1
    a = X
    for i in range(last + 1):  # z_i = a_{i-1} W_i + b_i, a_i = f(z_i) in place
        z = outputs[i]
        np.matmul(a, weights[i], out=z)
        np.add(z, biases[i], out=z)
        if i < last:
            activation.f(z, out=z)
        a = z
    return a


def _backward(
    weights: Sequence[np.ndarray],
    activation: Activation,
    X: np.ndarray,
    rows: Rows,
    grads_w: Sequence[np.ndarray],
    grads_b: Sequence[np.ndarray],
) -> None:
    """:func:`nn.backprop.backward` of ``rows.deltas[-1]`` (m, k) into ``grads_w``, ``grads_b``.

    ``X`` (m, d) is the input of the last :func:`_forward` on ``rows``; the other
    deltas are overwritten.
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
            np.multiply(d_prev, activation.df(a_prev, out=scratch[i - 1]), out=d_prev)
            delta = d_prev


class TrainStep:
    """Forward pass, softmax cross-entropy, backward pass and update for ``model``.

    Parameters
    ----------
    model:
        The network; its live arrays are read and updated in place.
    batch_size:
        Rows of a full minibatch; a shorter last batch is allowed.
    optimizer:
        The update rule (:mod:`nn.optim`); it receives the gradients below.
    weight_decay:
        L2 coefficient added to the weight gradients (not the biases).

    Attributes
    ----------
    grads_w, grads_b:
        Per layer, (n_in, n_out) and (n_out,): after a step, the gradients dJ/dW_i
        and dJ/db_i of the objective ``J`` (mean cross-entropy plus
        ``weight_decay / 2 * sum ||W_i||^2``) that the optimizer received.
    """

    def __init__(
        self, model: MLP, batch_size: int, optimizer: Optimizer, weight_decay: float = 0.0
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = float(weight_decay)
        self._activation = get_activation(model.activation)
        self._rows = {batch_size: Rows.allocate(model.layer_sizes, batch_size, model.dtype)}
        self.grads_w = [np.empty_like(w) for w in model.weights]
        self.grads_b = [np.empty_like(b) for b in model.biases]
        self._grads = [g for pair in zip(self.grads_w, self.grads_b, strict=True) for g in pair]
        self._params = model.parameters()
        self._decay_tmp = [np.empty_like(w) for w in model.weights] if weight_decay else []
        self._n_classes = model.layer_sizes[-1]
        self._onehot = np.empty((0, self._n_classes), dtype=model.dtype)
        self._flat = np.empty(0, dtype=np.intp)

    def epoch_labels(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One-hot labels (n, k) and flat indices (n,) for an epoch's shuffled labels ``y`` (n,).

        Row ``j`` of the epoch sits in row ``j % batch_size`` of its minibatch; its flat
        index ``(j % batch_size) * k + y[j]`` points at the true class inside the
        minibatch's (m, k) logits. Returns views of buffers reused by the next epoch.
        """
        n, k = y.shape[0], self._n_classes
        if self._onehot.shape[0] != n:
            self._onehot = np.empty((n, k), dtype=self._onehot.dtype)
            self._flat = np.empty(n, dtype=np.intp)
            self._row_offset = (np.arange(n, dtype=np.intp) % self.batch_size) * k
            self._epoch_offset = np.arange(n, dtype=np.intp) * k
        onehot, flat = self._onehot, self._flat
        onehot.fill(0)
        np.add(self._epoch_offset, y, out=flat)
        onehot.reshape(-1)[flat] = 1
        np.add(self._row_offset, y, out=flat)
        return onehot, flat

    def __call__(
        self, X: np.ndarray, onehot: np.ndarray, flat: np.ndarray, pred: np.ndarray, lr: float
    ) -> float:
        """Train on one minibatch; returns its summed cross-entropy (nats, float64).

        Parameters
        ----------
        X:
            (m, d) inputs in the model's dtype, ``m <= batch_size``; not modified.
        onehot, flat:
            The minibatch's rows of :meth:`epoch_labels`, (m, k) and (m,).
        pred:
            (m,) integer buffer that receives the predicted class of each row.
        lr:
            Learning rate of this step.
        """
        m = X.shape[0]
        rows = self._rows.get(m)
        if rows is None:  # the last, shorter batch of an epoch: views, made once
            rows = self._rows[m] = self._rows[self.batch_size].head(m)
        weights, act = self.model.weights, self._activation
        logits = _forward(weights, self.model.biases, act, X, rows)
        np.argmax(logits, axis=1, out=pred)
        g = rows.deltas[-1]
        loss = softmax_cross_entropy(
            logits, flat, g, rowmax=rows.rowmax, sums=rows.sums, rowloss=rows.rowloss
        )
        np.subtract(g, onehot, out=g)  # gradient of the summed loss
        np.multiply(g, 1.0 / m, out=g)  # delta_{L-1}: of the mean
        _backward(weights, act, X, rows, self.grads_w, self.grads_b)
        self._update(lr)
        return loss

    def _update(self, lr: float) -> None:
        """Add the weight decay to the weight gradients, then let the optimizer step."""
        wd = self.weight_decay
        if wd:
            for gwi, w, tmp in zip(self.grads_w, self.model.weights, self._decay_tmp, strict=True):
                np.multiply(w, wd, out=tmp)
                np.add(gwi, tmp, out=gwi)
        self.optimizer.step(self._params, self._grads, lr)
