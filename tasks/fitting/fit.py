"""Build a network and train it on prepared splits: the one fit of trials and final models.

Both a search trial (:func:`tasks.tuning.trials.run_trial`) and the final model
(:func:`tasks.train.train_final`) call :func:`fit`, so they build and train a
network the same way: ``rng`` first draws the initial weights
(:meth:`nn.model.MLP.create`), then drives the shuffles and the augmentation of
:func:`nn.train.train`, so a seed fixes the model completely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nn.model import MLP
from nn.train import EpochRecord, History, TrainConfig, train

__all__ = ["fit"]


def fit(
    splits: Any,
    hidden: Sequence[int],
    n_classes: int,
    config: TrainConfig,
    *,
    rng: np.random.Generator,
    callback: Callable[[EpochRecord], None] | None = None,
    augment: Any = None,
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
    """
    sizes = (int(splits.X_train.shape[1]), *(int(units) for units in hidden), int(n_classes))
    model = MLP.create(sizes, rng=rng)
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
    )
    return model, history
