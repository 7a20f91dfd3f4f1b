"""Learning-rate schedules as pure functions of the 0-based epoch index.

Each function returns the rate of epoch ``epoch`` and depends on nothing but its
arguments; :func:`learning_rate` runs a linear :func:`warmup` for ``warmup_epochs``,
then the chosen schedule from ``lr`` over the remaining epochs.
"""

from __future__ import annotations

import math

from nn.errors import ConfigError

SCHEDULES = ("constant", "step", "exponential", "cosine")


def constant(epoch: int, *, lr: float) -> float:
    """``lr`` at every epoch."""
    return lr


def step_decay(epoch: int, *, lr: float, decay: float, step_size: int) -> float:
    """``lr`` multiplied by ``decay`` every ``step_size`` epochs."""
    return lr * decay ** (epoch // step_size)


def exponential(epoch: int, *, lr: float, decay: float) -> float:
    """``lr`` multiplied by ``decay`` every epoch."""
    return lr * decay**epoch


def cosine(epoch: int, *, lr: float, epochs: int) -> float:
    """Half a cosine from ``lr`` at epoch 0 towards 0 at epoch ``epochs``."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def warmup(epoch: int, *, lr: float, warmup_epochs: int) -> float:
    """Linear warm-up: ``lr * (epoch + 1) / (warmup_epochs + 1)`` for ``epoch < warmup_epochs``."""
    return lr * (epoch + 1) / (warmup_epochs + 1)


def learning_rate(
    schedule: str,
    epoch: int,
    *,
    lr: float,
    epochs: int,
    decay: float = 0.5,
    step_size: int = 5,
    warmup_epochs: int = 0,
) -> float:
    """The rate of 0-based ``epoch`` in ``[0, epochs)`` under ``schedule`` (one of
    :data:`SCHEDULES`) after ``warmup_epochs`` of warm-up; ``lr`` is the peak rate,
    ``epochs`` counts the warm-up, ``decay`` and ``step_size`` are as in
    :class:`nn.config.TrainConfig`."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule={schedule!r} is not known; allowed: {list(SCHEDULES)}")
    if epoch < warmup_epochs:
        return warmup(epoch, lr=lr, warmup_epochs=warmup_epochs)
    e = epoch - warmup_epochs
    if schedule == "constant":
        return constant(e, lr=lr)
    if schedule == "step":
        return step_decay(e, lr=lr, decay=decay, step_size=step_size)
    if schedule == "exponential":
        return exponential(e, lr=lr, decay=decay)
    return cosine(e, lr=lr, epochs=max(epochs - warmup_epochs, 1))
