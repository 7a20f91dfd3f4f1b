"""Hidden-layer activations, each written beside its gradient.

Both functions of a pair work in place on preallocated buffers so the training
loop allocates nothing per minibatch:

- ``forward(z)`` overwrites the pre-activation ``z`` (batch, n) with ``f(z)``;
- ``backward(delta, a, scratch)`` multiplies ``delta`` (batch, n), the gradient with
  respect to the activation output, by ``f'(z)`` expressed through the output
  ``a = f(z)``, giving the gradient with respect to ``z``. ``scratch`` is a
  buffer of ``a``'s shape and dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from nn.errors import ConfigError


def relu_forward(z: np.ndarray) -> None:
    """``z <- max(z, 0)`` in place."""
    np.maximum(z, 0, out=z)


def relu_backward(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    """``delta <- delta * 1[a > 0]`` in place."""
    np.greater(a, 0, out=scratch)
    np.multiply(delta, scratch, out=delta)


def tanh_forward(z: np.ndarray) -> None:
    """``z <- tanh(z)`` in place."""
    np.tanh(z, out=z)


def tanh_backward(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    """``delta <- delta * (1 - a**2)`` in place."""
    np.multiply(a, a, out=scratch)
    np.subtract(1, scratch, out=scratch)
    np.multiply(delta, scratch, out=delta)


def sigmoid_forward(z: np.ndarray) -> None:
    """``z <- 1 / (1 + exp(-z))`` in place, computed as ``(1 + tanh(z / 2)) / 2`` (no overflow)."""
    np.multiply(z, 0.5, out=z)
    np.tanh(z, out=z)
    np.add(z, 1, out=z)
    np.multiply(z, 0.5, out=z)


def sigmoid_backward(delta: np.ndarray, a: np.ndarray, scratch: np.ndarray) -> None:
    """``delta <- delta * a * (1 - a)`` in place."""
    np.subtract(1, a, out=scratch)
    np.multiply(scratch, a, out=scratch)
    np.multiply(delta, scratch, out=delta)


class Activation(NamedTuple):
    """An activation's in-place forward function and its gradient."""

    forward: Callable[[np.ndarray], None]
    backward: Callable[[np.ndarray, np.ndarray, np.ndarray], None]


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu_forward, relu_backward),
    "tanh": Activation(tanh_forward, tanh_backward),
    "sigmoid": Activation(sigmoid_forward, sigmoid_backward),
}


def get_activation(name: str) -> Activation:
    """Return the activation called ``name``; raises ConfigError naming ``activation`` otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"activation={name!r} is not a known activation; allowed: {sorted(ACTIVATIONS)}"
        ) from None
