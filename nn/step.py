"""One training step (forward, loss, backward, update) over buffers allocated once.

At batch 128 the two large matrix products of the 784-300-10 network
(``X W_0`` forward, ``X^T delta_0`` backward) take most of a step's time;
everything else is some forty small numpy calls and the Python around them,
which :class:`TrainStep` keeps short:

- every intermediate array (activations, deltas, gradients, loss scratch) is
  allocated once in a :class:`nn.backprop.Workspace`, whose row views for a full
  batch and for the last, shorter batch of an epoch are made once, so a step
  slices nothing;
- :func:`nn.losses.softmax_cross_entropy` writes the softmax into the output
  delta buffer, and the gradient ``p - onehot(y)`` is formed there in place; the
  labels arrive as an epoch-wide one-hot matrix and flat indices
  (:meth:`TrainStep.epoch_labels`), built once per epoch;
- with SGD the factor ``lr / batch`` is folded into the (batch, k) output delta
  before backpropagation: every gradient then comes out of its matrix product
  already multiplied by ``lr`` and the update (:meth:`nn.optim.SGD.step_scaled`)
  makes three passes over each weight matrix instead of four. The maths is the
  same; only the rounding of ``lr * (A^T delta)`` against ``A^T (lr * delta)``
  differs. Other optimizers receive the plain gradient;
- the predicted class of each row is written into an epoch-wide array and
  compared with the labels once per epoch.

The forward and backward passes are :func:`nn.backprop.forward` and
:func:`nn.backprop.backward`, the ones inference uses too. Notation as in
:mod:`nn.backprop`: ``z_i = a_{i-1} W_i + b_i``, ``a_{-1} = X``.
"""

from __future__ import annotations

import numpy as np

from nn.activations import get_activation
from nn.backprop import Workspace, backward, forward
from nn.losses import softmax_cross_entropy
from nn.model import MLP
from nn.optim import SGD, Optimizer


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

    Attributes
    ----------
    grads_w, grads_b:
        Per layer, (n_in, n_out) and (n_out,): after a step, the gradients of the
        mean cross-entropy plus ``weight_decay / 2 * sum ||W||^2`` that the update
        used, multiplied by ``lr`` with SGD.
    """

    def __init__(
        self, model: MLP, batch_size: int, optimizer: Optimizer, weight_decay: float = 0.0
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.scaled = isinstance(optimizer, SGD)
        self.weight_decay = float(weight_decay)
        self._activation = get_activation(model.activation)
        self._workspace = Workspace(model.layer_sizes, batch_size, model.dtype)
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
        rows = self._workspace.rows(m)
        weights, act = self.model.weights, self._activation
        logits = forward(weights, self.model.biases, act, X, rows)
        np.argmax(logits, axis=1, out=pred)
        g = rows.deltas[-1]
        loss = softmax_cross_entropy(
            logits, flat, g, rowmax=rows.rowmax, sums=rows.sums, rowloss=rows.rowloss
        )
        np.subtract(g, onehot, out=g)  # gradient of the summed loss
        np.multiply(g, lr / m if self.scaled else 1.0 / m, out=g)  # of the mean (times lr)
        backward(weights, act, X, rows, self.grads_w, self.grads_b)
        self._update(lr)
        return loss

    def _update(self, lr: float) -> None:
        """Add the weight decay to the weight gradients, then let the optimizer step."""
        wd = self.weight_decay
        if wd:
            coef = lr * wd if self.scaled else wd
            for gwi, w, tmp in zip(self.grads_w, self.model.weights, self._decay_tmp, strict=True):
                np.multiply(w, coef, out=tmp)
                np.add(gwi, tmp, out=gwi)
        if self.scaled:
            self.optimizer.step_scaled(self._params, self._grads)
        else:
            self.optimizer.step(self._params, self._grads, lr)
