"""Optimizers that hold their own state, and the subnormal flush.

``optimizer.step(params, grads, lr)`` updates the parameter arrays in place; the
learning rate comes from outside (:mod:`nn.schedules`), the state (velocities,
moments, step count) lives in the optimizer and is created on the first step.

Where a gradient entry stays zero (blank pixels, dead ReLU units), a momentum buffer
decays geometrically into the subnormal floats, on which x86 arithmetic is many times
slower; the optimizers therefore zero such entries of their state
(:func:`flush_subnormals`) before the buffers touch the weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nn.errors import ConfigError, InputError

OPTIMIZERS = ("sgd", "adam")
"""The update rules :func:`make_optimizer` builds."""


def flush_subnormals(
    a: np.ndarray, scratch: np.ndarray, mask: np.ndarray, threshold: float | None = None
) -> None:
    """Set the entries of float array ``a`` with ``|a| < threshold`` to zero, in place.

    ``threshold`` defaults to ``finfo(a.dtype).tiny``, the smallest normal number, so
    exactly the subnormals are zeroed. ``scratch`` (float, ``a``'s shape) and ``mask``
    (bool, ``a``'s shape) are work buffers.
    """
    np.abs(a, out=scratch)
    np.less(scratch, np.finfo(a.dtype).tiny if threshold is None else threshold, out=mask)
    np.copyto(a, 0, where=mask)


def flush_schedule(decay: float, dtype=np.float32) -> tuple[int, float]:
    """``(every, threshold)`` for a buffer that shrinks by at most ``decay`` per step.

    Flushing entries below ``threshold = 2 * tiny / decay**every`` once every ``every``
    steps keeps every surviving entry above ``tiny`` until the next flush (the factor 2
    absorbs rounding); ``every = 8`` amortises the flush when ``decay >= 0.5``.
    """
    tiny = float(np.finfo(dtype).tiny)
    if decay <= 0.0:
        return 1, tiny
    every = 8 if decay >= 0.5 else 1
    return every, min(2.0 * tiny / decay**every, 2.0**-100)


def count_subnormals(a: np.ndarray) -> int:
    """Number of entries of ``a`` with ``0 < |a| < finfo(a.dtype).tiny``."""
    m = np.abs(a)
    return int(np.count_nonzero((m > 0) & (m < np.finfo(a.dtype).tiny)))


class Optimizer:
    """Base class: checks shapes, keeps per-parameter work buffers, counts steps."""

    def __init__(self) -> None:
        self.t: int = 0
        self._scratch: list[np.ndarray] = []
        self._scratch2: list[np.ndarray] = []
        self._mask: list[np.ndarray] = []

    def _buffers(self, params: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Zeroed state buffers, one per parameter."""
        return [np.zeros_like(p) for p in params]

    def _prepare(
        self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float
    ) -> None:
        if not (isinstance(lr, int | float | np.floating) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"lr={lr!r} must be a finite number > 0")
        if len(params) != len(grads):
            raise InputError(f"got {len(params)} parameters but {len(grads)} gradients")
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if p.shape != g.shape or p.dtype != g.dtype:
                raise InputError(
                    f"gradient {i} is {g.dtype}{g.shape}, parameter is {p.dtype}{p.shape}"
                )
        if not self._scratch:
            self._allocate(params)
        elif [s.shape for s in self._scratch] != [p.shape for p in params]:
            raise InputError("the parameters' shapes changed since the optimizer's first step")
        self.t += 1

    def _allocate(self, params: Sequence[np.ndarray]) -> None:
        self._scratch = self._buffers(params)
        self._scratch2 = self._buffers(params)
        self._mask = [np.empty(p.shape, dtype=bool) for p in params]
        self._init_state(params)

    def _init_state(self, params: Sequence[np.ndarray]) -> None:
        raise NotImplementedError

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None:
        """Update ``params`` in place from ``grads`` (same shapes and dtypes) with rate ``lr``."""
        raise NotImplementedError

    def state_buffers(self) -> list[np.ndarray]:
        """Every state array the optimizer keeps (for inspection and tests)."""
        raise NotImplementedError

    def restore(self, params: Sequence[np.ndarray], t: int, buffers: Sequence[np.ndarray]) -> None:
        """Resume from a saved state: ``t`` steps taken, ``buffers`` as :meth:`state_buffers`;
        the next step continues exactly as if this optimizer had taken those steps.

        Raises
        ------
        InputError
            If the buffers do not match the parameters' number, shapes or dtypes.
        """
        self._allocate(params)
        own = self.state_buffers()
        if len(own) != len(buffers) or any(
            a.shape != b.shape or a.dtype != b.dtype for a, b in zip(own, buffers, strict=False)
        ):
            raise InputError(
                f"optimizer state holds {[(b.dtype.name, b.shape) for b in buffers]}, "
                f"expected {[(a.dtype.name, a.shape) for a in own]}"
            )
        for a, b in zip(own, buffers, strict=True):
            np.copyto(a, b)
        self.t = int(t)


class SGD(Optimizer):
    """SGD with optional classical or Nesterov momentum, as in :mod:`nn.backprop`.

    With ``momentum == 0`` it is plain ``p <- p - lr * g``. ``flush=False`` disables the
    subnormal flush of the velocities (for comparisons only).
    """

    def __init__(self, momentum: float = 0.0, nesterov: bool = False, flush: bool = True) -> None:
        super().__init__()
        self.flush = bool(flush)
        if not (0.0 <= momentum < 1.0):
            raise ConfigError(f"momentum={momentum!r} must be in [0, 1)")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocities: list[np.ndarray] = []

    def _init_state(self, params: Sequence[np.ndarray]) -> None:
        self.velocities = self._buffers(params) if self.momentum > 0 else []
        self._flush_every, self._flush_below = flush_schedule(self.momentum, params[0].dtype)

    def state_buffers(self) -> list[np.ndarray]:
        return list(self.velocities)

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None:
        self._prepare(params, grads, lr)
        mu = self.momentum
        flush = self.flush and self.t % self._flush_every == 0
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            s = np.multiply(g, lr, out=self._scratch[i])  # lr * g
            if mu == 0.0:
                np.subtract(p, s, out=p)
                continue
            v = self.velocities[i]
            np.multiply(v, mu, out=v)
            np.subtract(v, s, out=v)  # v = mu * v - lr * g
            if flush:
                flush_subnormals(v, self._scratch2[i], self._mask[i], self._flush_below)
            if self.nesterov:
                w = self._scratch2[i]
                np.multiply(v, mu, out=w)
                np.subtract(w, s, out=w)  # mu * v - lr * g
                np.add(p, w, out=p)
            else:
                np.add(p, v, out=p)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with the bias correction folded into the step size::

    m <- b1 * m + (1 - b1) * g
    v <- b2 * v + (1 - b2) * g * g
    p <- p - lr_t * m / (sqrt(v) + eps),   lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t)
    """

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__()
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not (0.0 <= value < 1.0):
                raise ConfigError(f"{name}={value!r} must be in [0, 1)")
        if not (epsilon > 0):
            raise ConfigError(f"epsilon={epsilon!r} must be > 0")
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def _init_state(self, params: Sequence[np.ndarray]) -> None:
        self.m = self._buffers(params)
        self.v = self._buffers(params)

    def state_buffers(self) -> list[np.ndarray]:
        return [*self.m, *self.v]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray], lr: float) -> None:
        self._prepare(params, grads, lr)
        b1, b2, t = self.beta1, self.beta2, self.t
        lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            m, v, s, mask = self.m[i], self.v[i], self._scratch[i], self._mask[i]
            np.multiply(m, b1, out=m)
            np.multiply(g, 1.0 - b1, out=s)
            np.add(m, s, out=m)
            np.multiply(v, b2, out=v)
            np.multiply(g, g, out=s)
            np.multiply(s, 1.0 - b2, out=s)
            np.add(v, s, out=v)
            flush_subnormals(m, s, mask)
            flush_subnormals(v, s, mask)
            np.sqrt(v, out=s)
            np.add(s, self.epsilon, out=s)
            np.divide(m, s, out=s)
            np.multiply(s, lr_t, out=s)
            np.subtract(p, s, out=p)


def make_optimizer(
    name: str,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> Optimizer:
    """Build the optimizer called ``name`` (``"sgd"`` or ``"adam"``)."""
    if name == "sgd":
        return SGD(momentum=momentum, nesterov=nesterov)
    if name == "adam":
        return Adam(beta1=beta1, beta2=beta2, epsilon=epsilon)
    raise ConfigError(f"optimizer={name!r} is not known; allowed: {list(OPTIMIZERS)}")
