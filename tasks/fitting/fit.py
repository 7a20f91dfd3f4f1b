"""Build a network and train it on prepared splits: the one fit of trials and final models.

Both a search trial (:func:`tasks.tuning.trials.run_trial`) and the final model
(:func:`tasks.train.train_final`) call :func:`fit`, so they build and train a
network the same way: ``rng`` first draws the initial weights
(:meth:`nn.model.MLP.create`), then drives the shuffles and the augmentation of
:func:`nn.train.train`, so a seed fixes the model completely.

With augmentation the minibatches are prepared one step ahead in a background
thread (``prefetch`` of :func:`nn.train.train`: the same random draws, so the same
model), when the process has more than one core; ``threads`` sets the BLAS threads
(:func:`tasks.fitting.threads.blas_threads`). A trial that continues
from a checkpoint passes the checkpoint's ``model``, ``state`` and generator instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nn.model import MLP
from nn.train import EpochRecord, History, TrainConfig, TrainState, train
from tasks.fitting.threads import available_cores, blas_threads

__all__ = ["CODE_VERSION", "fit"]

CODE_VERSION = 1
"""Bump when a change in ``nn/`` or ``tasks/fitting/`` changes what training gives:
every stored trial and final model is then trained anew (:mod:`tasks.cache`)."""


def fit(
    splits: Any,
    hidden: Sequence[int],
    n_classes: int,
    config: TrainConfig,
    *,
    rng: np.random.Generator,
    callback: Callable[[EpochRecord], None] | None = None,
    augment: Any = None,
    threads: int | str | None = None,
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
    hidden:
        Units of each hidden layer.
    n_classes:
        Output units.
    config:
        The training settings.
    rng:
        Draws the initial weights, then drives shuffling and augmentation.
    callback:
        Called with each epoch's record.
    augment:
        The minibatch augmenter (:func:`tasks.fitting.augment.make_augmenter`), or None.
    threads:
        BLAS threads: a count, ``"auto"`` (the cores it has, one when that is faster),
        or None to leave them as the caller set them.
    model, state, stop_epoch:
        Resume ``model`` (None: create one) from ``state`` and stop after ``stop_epoch``
        (see :func:`nn.train.train`); ``state`` is updated as training goes.
    """
    if model is None:
        sizes = (int(splits.X_train.shape[1]), *(int(units) for units in hidden), int(n_classes))
        model = MLP.create(sizes, rng=rng)
    prefetch = augment is not None and available_cores() > 1
    with blas_threads(threads, prefetch=prefetch) as pacer:
        history = train(
            model,
            splits.X_train,
            splits.y_train,
            config,
            rng=rng,
            X_val=splits.X_val,
            y_val=splits.y_val,
            callback=callback,
            augment=augment,
            prefetch=prefetch,
            on_batch=pacer,
            state=state,
            stop_epoch=stop_epoch,
        )
    return model, history
