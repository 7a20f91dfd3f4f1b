"""Hidden-layer activations, each written beside its derivative.

An :class:`Activation` pairs ``f(z)`` with ``df(a)``, the derivative ``f'(z)`` expressed
through the output ``a = f(z)`` (the forward pass keeps ``a``, not ``z``); both map
(m, n) arrays and take an optional ``out`` buffer (possibly the argument itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from nn.errors import ConfigError


def relu(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``max(z, 0)``."""
    return np.maximum(z, 0, out=out)


def relu_derivative(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1[a > 0]``, in ``a``'s dtype."""
    if out is None:
        out = np.empty_like(a)
    return np.greater(a, 0, out=out)


def tanh(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``tanh(z)``."""
    return np.tanh(z, out=out)


def tanh_derivative(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 - a**2``."""
    out = np.multiply(a, a, out=out)
    return np.subtract(1, out, out=out)


def sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``1 / (1 + exp(-z))``, computed as ``(1 + tanh(z / 2)) / 2`` (no overflow)."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    np.add(out, 1, out=out)
    return np.multiply(out, 0.5, out=out)


def sigmoid_derivative(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a * (1 - a)``."""
    out = np.subtract(1, a, out=out)
    return np.multiply(out, a, out=out)


class Activation(NamedTuple):
    """An activation ``f`` and its derivative ``df``, written in terms of ``f``'s output."""

    f: Callable[..., np.ndarray]
    df: Callable[..., np.ndarray]


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, relu_derivative),
    "tanh": Activation(tanh, tanh_derivative),
    "sigmoid": Activation(sigmoid, sigmoid_derivative),
}


def get_activation(name: str) -> Activation:
    """Return the activation called ``name``; raises ConfigError naming ``activation`` otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"activation={name!r} is not a known activation; allowed: {sorted(ACTIVATIONS)}"
        ) from None
