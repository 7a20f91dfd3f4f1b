"""A multilayer perceptron: any number of hidden layers, softmax output.

The model is the weight matrices ``W_l`` (n_in, n_out) and bias vectors ``b_l``
(n_out,), all of one float dtype (float32; float64 for gradient checks), and the
hidden activation's name. Inference runs :func:`nn.backprop.forward`, a batch of
rows at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from nn.activations import get_activation
from nn.backprop import forward
from nn.errors import ConfigError, InputError
from nn.init import get_initializer
from nn.losses import cross_entropy, softmax

DEFAULT_LAYER_SIZES: tuple[int, ...] = (784, 300, 10)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INFERENCE_BATCH = 4096


def _check_layer_sizes(layer_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(layer_sizes)
    if len(sizes) < 2 or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1 for n in sizes
    ):
        raise ConfigError(
            f"layer_sizes={sizes!r} must list at least two positive integers "
            "(inputs, [hidden...], classes)"
        )
    return tuple(int(n) for n in sizes)


class MLP:
    """Multilayer perceptron with a shared hidden activation and a softmax output.

    Parameters
    ----------
    weights:
        ``W_l`` of shape (n_l, n_{l+1}), one float dtype for all.
    biases:
        ``b_l`` of shape (n_{l+1},), same dtype.
    activation:
        Hidden activation name (see :data:`nn.activations.ACTIVATIONS`).
    """

    def __init__(
        self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activation: str = "relu"
    ) -> None:
        get_activation(activation)
        if len(weights) == 0 or len(weights) != len(biases):
            raise InputError(
                f"need as many bias vectors as weight matrices (at least one); "
                f"got {len(weights)} weights and {len(biases)} biases"
            )
        dtype = np.asarray(weights[0]).dtype
        if dtype not in FLOAT_DTYPES:
            raise InputError(f"weights must be float32 or float64, got dtype {dtype}")
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            w, b = np.asarray(w), np.asarray(b)
            if w.dtype != dtype or b.dtype != dtype:
                raise InputError(
                    f"layer {i}: weights dtype {w.dtype} / biases dtype {b.dtype} "
                    f"differ from {dtype}"
                )
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise InputError(
                    f"layer {i}: weights shape {w.shape} and biases shape {b.shape} do not fit "
                    "(expected (n_in, n_out) and (n_out,))"
                )
            if i > 0 and w.shape[0] != weights[i - 1].shape[1]:
                raise InputError(
                    f"layer {i}: weights shape {w.shape} does not follow the previous layer's "
                    f"{weights[i - 1].shape[1]} outputs"
                )
        self.weights: list[np.ndarray] = [np.ascontiguousarray(w) for w in weights]
        self.biases: list[np.ndarray] = [np.ascontiguousarray(b) for b in biases]
        self.activation: str = activation

    @classmethod
    def create(
        cls,
        layer_sizes: Sequence[int] = DEFAULT_LAYER_SIZES,
        *,
        activation: str = "relu",
        init: str = "he",
        rng: np.random.Generator,
        dtype: type[np.floating] = np.float32,
    ) -> MLP:
        """A freshly initialised network; ``init`` names the weight initialiser, biases are zero."""
        sizes = _check_layer_sizes(layer_sizes)
        initializer = get_initializer(init)
        if not isinstance(rng, np.random.Generator):
            raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if np.dtype(dtype) not in FLOAT_DTYPES:
            raise ConfigError(f"dtype={dtype!r} must be float32 or float64")
        weights = [
            initializer(a, b, rng, np.dtype(dtype).type) for a, b in itertools.pairwise(sizes)
        ]
        biases = [np.zeros(b, dtype=dtype) for b in sizes[1:]]
        return cls(weights, biases, activation)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """(n_inputs, hidden..., n_classes)."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights))

    @property
    def dtype(self) -> np.dtype:
        """The float dtype of every parameter."""
        return self.weights[0].dtype

    def parameters(self) -> list[np.ndarray]:
        """The live parameter arrays, ordered ``[W_0, b_0, W_1, b_1, ...]``."""
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def copy(self) -> MLP:
        """A deep copy."""
        return MLP(
            [w.copy() for w in self.weights], [b.copy() for b in self.biases], self.activation
        )

    def set_parameters(self, params: Sequence[np.ndarray]) -> None:
        """Copy ``params`` (ordered as :meth:`parameters`) into the live arrays."""
        live = self.parameters()
        if len(params) != len(live):
            raise InputError(f"expected {len(live)} parameter arrays, got {len(params)}")
        for dst, src in zip(live, params, strict=True):
            np.copyto(dst, src)

    def check_inputs(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        """``X`` as an array after checking it is numeric with shape (n, d); InputError names it."""
        X = np.asarray(X)
        d = self.layer_sizes[0]
        if X.ndim != 2 or X.shape[1] != d:
            raise InputError(f"{name} must have shape (n, {d}), got {X.shape}")
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise InputError(f"{name} must be a numeric array, got dtype {X.dtype}")
        return X

    def check_labels(self, y: np.ndarray, n: int, name: str = "y") -> np.ndarray:
        """``y`` as an array after checking it holds (n,) integers in ``[0, k)``."""
        y = np.asarray(y)
        k = self.layer_sizes[-1]
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise InputError(
                f"{name} must be an integer array of shape ({n},), got {y.dtype} {y.shape}"
            )
        if n and (y.min() < 0 or y.max() >= k):
            raise InputError(f"{name} holds labels outside [0, {k}): min {y.min()}, max {y.max()}")
        return y

    def _logits_batches(self, X: np.ndarray, batch_size: int) -> Iterator[tuple[slice, np.ndarray]]:
        """``(slice of X, logits (m, k))`` for checked inputs ``X`` (n, d), batch by batch."""
        if not (isinstance(batch_size, int | np.integer) and batch_size >= 1) or batch_size is True:
            raise InputError(f"batch_size={batch_size!r} must be a positive integer")
        for start in range(0, X.shape[0], batch_size):
            s = slice(start, start + batch_size)
            xb = np.asarray(X[s], dtype=self.dtype)
            yield s, forward(self.weights, self.biases, self.activation, xb)[-1]

    def logits(self, X: np.ndarray, *, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """Raw output scores (n, k) in the model's dtype for ``X`` (n, d); batched."""
        X = self.check_inputs(X)
        out = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=self.dtype)
        for s, z in self._logits_batches(X, batch_size):
            out[s] = z
        return out

    def predict_proba(self, X: np.ndarray, *, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """Class probabilities (n, k) in the model's dtype for ``X`` (n, d); batched."""
        X = self.check_inputs(X)
        out = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=self.dtype)
        for s, z in self._logits_batches(X, batch_size):
            softmax(z, out[s])
        return out

    def predict(self, X: np.ndarray, *, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
        """Predicted labels (n,) int64 for ``X`` (n, d); batched."""
        X = self.check_inputs(X)
        out = np.empty(X.shape[0], dtype=np.int64)
        for s, z in self._logits_batches(X, batch_size):
            np.argmax(z, axis=1, out=out[s])
        return out

    def evaluate(
        self, X: np.ndarray, y: np.ndarray, *, batch_size: int = INFERENCE_BATCH
    ) -> tuple[float, float]:
        """Mean cross-entropy (nats) and accuracy in [0, 1] on ``X`` (n, d), ``y`` (n,); batched."""
        X = self.check_inputs(X)
        y = self.check_labels(y, X.shape[0])
        if X.shape[0] == 0:
            raise InputError("X is empty: cannot evaluate on zero samples")
        loss_sum, correct = 0.0, 0
        for s, z in self._logits_batches(X, batch_size):
            correct += int(np.count_nonzero(z.argmax(axis=1) == y[s]))
            loss_sum += float(np.sum(cross_entropy(z, y[s]), dtype=np.float64))
        n = X.shape[0]
        return loss_sum / n, correct / n

    def __repr__(self) -> str:
        sizes, act = self.layer_sizes, self.activation
        return f"MLP(layer_sizes={sizes}, activation={act!r}, dtype={self.dtype})"
