"""One training step (forward, loss, backward, update) over buffers allocated once.

At batch 128 the two large matrix products of the 784-300-10 network
(``X W_0`` forward, ``X^T delta_0`` backward) take about 1.2 ms on one core;
everything else is some forty small numpy calls and the Python around them,
which :class:`TrainStep` keeps short:

- every intermediate array (activations, deltas, gradients, loss scratch) is
  allocated once, and the row views for a full batch and for the last, shorter
  batch of an epoch are made in advance, so a step slices nothing;
- softmax, cross-entropy and their gradient are one in-place pass over the
  output delta buffer; the labels arrive as an epoch-wide one-hot matrix and
  flat indices (:meth:`TrainStep.epoch_labels`), built once per epoch;
- with SGD the factor ``lr / batch`` is folded into the (batch, k) output delta
  before backpropagation: every gradient then comes out of its matrix product
  already multiplied by ``lr`` and the update (:meth:`nn.optim.SGD.step_scaled`)
  makes three passes over each weight matrix instead of four. The maths is the
  same; only the rounding of ``lr * (A^T delta)`` against ``A^T (lr * delta)``
  differs. Other optimizers receive the plain gradient;
- the predicted class of each row is written into an epoch-wide array and
  compared with the labels once per epoch.

Notation as in :mod:`nn.backprop`: ``z_i = a_{i-1} W_i + b_i``, ``a_{-1} = X``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nn.activations import get_activation
from nn.model import MLP
from nn.optim import SGD, Optimizer


class _Views(NamedTuple):
    """Row views of the step's buffers for one batch length ``m``."""

    outputs: list[np.ndarray]  # per layer (m, n_out): a_i, then the logits
    deltas: list[np.ndarray]  # per layer (m, n_out)
    scratch: list[np.ndarray]  # per hidden layer (m, n_out)
    rowmax: np.ndarray  # (m, 1) row maxima of the logits
    sums: np.ndarray  # (m, 1) row sums of exp(shifted logits)
    picked: np.ndarray  # (m,) shifted logit of the true class, then the row's loss
    logsum: np.ndarray  # (m,) log of ``sums``


class TrainStep:
    """Forward pass, softmax cross-entropy, backward pass and update for ``model``.

    Parameters
    ----------
    model:
        The network; its live arrays are read and updated in place.
    batch_size:
        Rows of a full minibatch; a shorter last batch is allowed.
    optimizer:
        The optimizer; :class:`nn.optim.SGD` takes the scaled fast path.
    weight_decay:
        L2 coefficient added to the weight gradients (not the biases).
    """

    def __init__(
        self, model: MLP, batch_size: int, optimizer: Optimizer, weight_decay: float = 0.0
    ) -> None:
        dt = model.dtype
        sizes = model.layer_sizes
        outs = sizes[1:]
        self.model = model
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.scaled = isinstance(optimizer, SGD)
        self.weight_decay = float(weight_decay)
        act = get_activation(model.activation)
        self._act_forward, self._act_backward = act.forward, act.backward
        self._outputs = [np.empty((batch_size, n), dtype=dt) for n in outs]
        self._deltas = [np.empty((batch_size, n), dtype=dt) for n in outs]
        self._scratch = [np.empty((batch_size, n), dtype=dt) for n in outs[:-1]]
        self._rowmax = np.empty((batch_size, 1), dtype=dt)
        self._sums = np.empty((batch_size, 1), dtype=dt)
        self._picked = np.empty(batch_size, dtype=dt)
        self._logsum = np.empty(batch_size, dtype=dt)
        self.grads_w = [np.empty_like(w) for w in model.weights]
        self.grads_b = [np.empty_like(b) for b in model.biases]
        self._grads = [g for pair in zip(self.grads_w, self.grads_b, strict=True) for g in pair]
        self._params = model.parameters()
        self._decay_tmp = [np.empty_like(w) for w in model.weights] if weight_decay else []
        self._views: dict[int, _Views] = {}
        self._n_classes = outs[-1]
        self._onehot = np.empty((0, outs[-1]), dtype=dt)
        self._flat = np.empty(0, dtype=np.intp)

    def _views_for(self, m: int) -> _Views:
        v = self._views.get(m)
        if v is None:
            v = self._views[m] = _Views(
                [o[:m] for o in self._outputs],
                [d[:m] for d in self._deltas],
                [s[:m] for s in self._scratch],
                self._rowmax[:m],
                self._sums[:m],
                self._picked[:m],
                self._logsum[:m],
            )
        return v

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
        self,
        X: np.ndarray,
        onehot: np.ndarray,
        flat: np.ndarray,
        pred: np.ndarray,
        lr: float,
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
        v = self._views_for(m)
        model = self.model
        weights, biases = model.weights, model.biases
        outputs, deltas, scratch = v.outputs, v.deltas, v.scratch
        last = len(weights) - 1
        act_forward = self._act_forward

        # forward: z_i = a_{i-1} W_i + b_i, a_i = f(z_i) in place
        a = X
        for i in range(last + 1):
            z = outputs[i]
            np.matmul(a, weights[i], out=z)
            np.add(z, biases[i], out=z)
            if i < last:
                act_forward(z)
            a = z
        logits = a
        np.argmax(logits, axis=1, out=pred)

        # softmax cross-entropy and its gradient, in place in the output delta
        g = deltas[last]
        np.max(logits, axis=1, keepdims=True, out=v.rowmax)
        np.subtract(logits, v.rowmax, out=g)  # shifted logits, row max 0
        np.take(g.reshape(-1), flat, out=v.picked, mode="clip")
        np.exp(g, out=g)
        np.sum(g, axis=1, keepdims=True, out=v.sums)  # in [1, k]: no overflow, no log(0)
        np.log(v.sums[:, 0], out=v.logsum)
        np.subtract(v.logsum, v.picked, out=v.picked)  # per-row loss
        loss = float(np.sum(v.picked, dtype=np.float64))
        np.divide(g, v.sums, out=g)  # softmax
        np.subtract(g, onehot, out=g)
        scale = lr / m if self.scaled else 1.0 / m
        np.multiply(g, scale, out=g)

        # backward: dW_i = a_{i-1}^T delta_i, db_i = sum_rows(delta_i)
        gw, gb = self.grads_w, self.grads_b
        delta = g
        for i in range(last, -1, -1):
            a_prev = X if i == 0 else outputs[i - 1]
            np.matmul(a_prev.T, delta, out=gw[i])
            np.sum(delta, axis=0, out=gb[i])
            if i > 0:
                d_prev = deltas[i - 1]
                np.matmul(delta, weights[i].T, out=d_prev)
                self._act_backward(d_prev, a_prev, scratch[i - 1])
                delta = d_prev

        wd = self.weight_decay
        if wd:
            coef = lr * wd if self.scaled else wd
            for gwi, w, tmp in zip(gw, weights, self._decay_tmp, strict=True):
                np.multiply(w, coef, out=tmp)
                np.add(gwi, tmp, out=gwi)
        if self.scaled:
            self.optimizer.step_scaled(self._params, self._grads)
        else:
            self.optimizer.step(self._params, self._grads, lr)
        return loss
