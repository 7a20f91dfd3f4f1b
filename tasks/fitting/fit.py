"""Build a network and train it on prepared splits: the one fit of trials and final models.

Search trials and the final model both call :func:`fit`, so they build and train a
network the same way, and a seed fixes the model for a given BLAS thread count on a given
machine (a count changes how BLAS splits the sums, and training amplifies that).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from nn.errors import ConfigError
from nn.model import MLP
from nn.train import EpochRecord, History, TrainConfig, TrainState, train
from tasks.fitting.augment import Augmenter, eased

__all__ = ["BLAS_THREADS", "CODE_VERSION", "fit"]

CODE_VERSION = 4
"""Bump when a change in ``nn/`` or ``tasks/fitting/`` changes what training gives:
every stored trial and final model is then trained anew (:mod:`tasks.cache`)."""

BLAS_THREADS = 1
"""BLAS threads of a training that runs alone unless ``--threads`` says otherwise: more
did not save enough to justify results that depend on the count (``bench/thread_speed.py``)."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def fit(
    splits: Any,
    hidden: Sequence[int],
    n_classes: int,
    config: TrainConfig,
    *,
    rng: np.random.Generator,
    callback: Callable[[EpochRecord], None] | None = None,
    augment: Any = None,
    threads: int | None = None,
    model: MLP | None = None,
    state: TrainState | None = None,
    stop_epoch: int | None = None,
) -> tuple[MLP, History]:
    """Create a ``d-hidden-...-n_classes`` network and train it; return it with its history.

    Parameters
    ----------
    splits:
        ``X_train`` float32 ``(n, d)``, ``y_train`` int64 ``(n,)`` and the validation
        split ``X_val``, ``y_val`` (None without one), e.g. ``PreparedData.load()``.
    hidden, n_classes, config:
        Units of each hidden layer, output units, the training settings.
    rng:
        Draws the initial weights, then drives shuffling and augmentation.
    callback:
        Called with each epoch's record.
    augment:
        The minibatch augmenter, or None; prepared one step ahead in a background thread
        when the process has more than one core (the same draws, so the same model). An
        :class:`~tasks.fitting.augment.Augmenter` eases off over the last epochs of
        ``config.epochs`` (:func:`~tasks.fitting.augment.eased`).
    threads:
        BLAS threads during the training (a count >= 1), or None to leave them as the
        caller set them (a search trial gets its share of the cores).
    model, state, stop_epoch:
        Resume ``model`` (None: create one) from ``state`` and stop after ``stop_epoch``
        (see :func:`nn.train.train`); ``state`` is updated as training goes.
    """
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ConfigError(f"threads={threads!r} must be a number of threads >= 1")
    if model is None:
        sizes = (int(splits.X_train.shape[1]), *(int(units) for units in hidden), int(n_classes))
        model = MLP.create(sizes, rng=rng)
    prefetch = augment is not None and available_cores() > 1
    by_epoch = eased(augment, config.epochs) if isinstance(augment, Augmenter) else None
    limit = threadpool_limits(threads, user_api="blas") if threads else contextlib.nullcontext()
    with limit:
        history = train(
            model,
            splits.X_train,
            splits.y_train,
            config,
            rng=rng,
            X_val=splits.X_val,
            y_val=splits.y_val,
            callback=callback,
            augment=augment if by_epoch is None else None,
            augment_by_epoch=by_epoch,
            prefetch=prefetch,
            state=state,
            stop_epoch=stop_epoch,
        )
    return model, history
