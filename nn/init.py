"""Weight initialisers, chosen by name.

Each initialiser draws a ``(n_in, n_out)`` matrix from an explicit
:class:`numpy.random.Generator`; biases always start at zero.

- ``"he"``: He et al. (2015) normal, ``N(0, 2 / n_in)``, for ReLU layers.
- ``"he_uniform"``: ``U(-sqrt(6 / n_in), sqrt(6 / n_in))``.
- ``"xavier"`` (alias ``"glorot"``): Glorot & Bengio (2010) uniform,
  ``U(-sqrt(6 / (n_in + n_out)), +sqrt(6 / (n_in + n_out)))``, for tanh/sigmoid layers.
- ``"xavier_normal"``: ``N(0, 2 / (n_in + n_out))``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nn.errors import ConfigError

Initializer = Callable[[int, int, np.random.Generator, type[np.floating]], np.ndarray]


def _uniform(limit: float, shape: tuple[int, int], rng: np.random.Generator, dtype) -> np.ndarray:
    u = rng.random(size=shape, dtype=dtype)  # [0, 1)
    return (u * dtype(2 * limit) - dtype(limit)).astype(dtype, copy=False)


def _normal(std: float, shape: tuple[int, int], rng: np.random.Generator, dtype) -> np.ndarray:
    return (rng.standard_normal(size=shape, dtype=dtype) * dtype(std)).astype(dtype, copy=False)


def he_normal(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """He normal initialisation; returns ``(n_in, n_out)`` with std ``sqrt(2 / n_in)``."""
    return _normal(np.sqrt(2.0 / n_in), (n_in, n_out), rng, dtype)


def he_uniform(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """He uniform initialisation; returns ``(n_in, n_out)`` in ``±sqrt(6 / n_in)``."""
    return _uniform(np.sqrt(6.0 / n_in), (n_in, n_out), rng, dtype)


def xavier_uniform(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Glorot/Xavier uniform; returns ``(n_in, n_out)`` in ``±sqrt(6 / (n_in + n_out))``."""
    return _uniform(np.sqrt(6.0 / (n_in + n_out)), (n_in, n_out), rng, dtype)


def xavier_normal(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Glorot/Xavier normal; returns ``(n_in, n_out)`` with std ``sqrt(2 / (n_in + n_out))``."""
    return _normal(np.sqrt(2.0 / (n_in + n_out)), (n_in, n_out), rng, dtype)


INITIALIZERS: dict[str, Initializer] = {
    "he": he_normal,
    "he_uniform": he_uniform,
    "xavier": xavier_uniform,
    "glorot": xavier_uniform,
    "xavier_normal": xavier_normal,
}


def get_initializer(name: str) -> Initializer:
    """Return the initialiser called ``name``; raises ConfigError naming ``init`` otherwise."""
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"init={name!r} is not a known initialiser; allowed: {sorted(INITIALIZERS)}"
        ) from None
