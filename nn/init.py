"""Weight initialisers, chosen by name; biases always start at zero.

Each draws a ``(n_in, n_out)`` matrix from an explicit :class:`numpy.random.Generator`:

- ``"he"``: He et al. (2015) normal, ``N(0, 2 / n_in)``, for ReLU layers;
- ``"xavier"``: Glorot & Bengio (2010) uniform, ``U(-r, r)`` with
  ``r = sqrt(6 / (n_in + n_out))``, for tanh and sigmoid layers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nn.errors import ConfigError

Initializer = Callable[[int, int, np.random.Generator, type[np.floating]], np.ndarray]


def he_normal(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """He normal initialisation; returns ``(n_in, n_out)`` with std ``sqrt(2 / n_in)``."""
    std = dtype(np.sqrt(2.0 / n_in))
    return (rng.standard_normal(size=(n_in, n_out), dtype=dtype) * std).astype(dtype, copy=False)


def xavier_uniform(n_in: int, n_out: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Glorot/Xavier uniform; returns ``(n_in, n_out)`` in ``±sqrt(6 / (n_in + n_out))``."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    u = rng.random(size=(n_in, n_out), dtype=dtype)  # [0, 1)
    return (u * dtype(2 * limit) - dtype(limit)).astype(dtype, copy=False)


INITIALIZERS: dict[str, Initializer] = {"he": he_normal, "xavier": xavier_uniform}


def get_initializer(name: str) -> Initializer:
    """Return the initialiser called ``name``; raises ConfigError naming ``init`` otherwise."""
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"init={name!r} is not a known initialiser; allowed: {sorted(INITIALIZERS)}"
        ) from None
