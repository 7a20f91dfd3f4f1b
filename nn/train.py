"""Minibatch training with a per-epoch history, early stopping and divergence detection.

:func:`train` runs ``config.epochs`` passes over ``(X, y)``: each epoch shuffles with
the caller's generator (:class:`nn.batches.Batches`), takes one fused step per
minibatch (:class:`nn.step.TrainStep`), records an :class:`EpochRecord` and hands it
to ``callback``; it never prints. The same seed and data give bit-identical weights
on one machine with one number of BLAS threads. A run can stop (``stop_epoch``) and
resume from a :class:`TrainState` bit for bit (:mod:`nn.checkpoint` puts it in files).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.batches import Augment, Batches
from nn.config import TrainConfig
from nn.errors import ConfigError, InputError, NonFiniteError
from nn.model import MLP
from nn.optim import Optimizer, flush_subnormals, make_optimizer
from nn.schedules import learning_rate
from nn.step import TrainStep

__all__ = ["EpochRecord", "History", "TrainConfig", "TrainState", "optimizer_for", "train"]


@dataclass(frozen=True)
class EpochRecord:
    """What happened in one epoch: ``train_loss`` and ``train_accuracy`` are running means
    over its minibatches (cross-entropy in nats without the L2 penalty, comparable with
    ``val_loss``); ``val_*`` are measured after the epoch (None without validation data);
    ``lr`` is the rate used, ``seconds`` the wall time including validation."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)


@dataclass
class History:
    """The records of a run; ``best_epoch`` (1-based) has the lowest validation loss,
    or is the last epoch without validation data."""

    records: list[EpochRecord] = dataclasses.field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per epoch."""
        return [r.to_dict() for r in self.records]


@dataclass
class TrainState:
    """Where a training run stands: ``epoch`` epochs done, the ``optimizer`` with its state;
    :func:`train` fills an empty one and updates it after every epoch."""

    epoch: int = 0
    optimizer: Optimizer | None = None


def _check_data(
    model: MLP, X: np.ndarray, y: np.ndarray, xname: str, yname: str
) -> tuple[np.ndarray, np.ndarray]:
    X = model.check_inputs(X, xname)
    if X.shape[0] == 0:
        raise InputError(f"{xname} is empty: need at least one sample")
    y = model.check_labels(y, X.shape[0], yname)
    return np.asarray(X, dtype=model.dtype), y.astype(np.intp, copy=False)


def _check_finite(model: MLP, epoch: int) -> None:
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise NonFiniteError(f"the weights of layer {i} became non-finite", epoch)


def _run_epoch(
    step: TrainStep,
    batches: Batches,
    pred: np.ndarray,
    y: np.ndarray,
    lr: float,
    epoch: int,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """One pass over the data; returns (mean minibatch loss, accuracy).

    ``pred`` (n,) receives the predicted class of every row, in the epoch's order.
    """
    n = y.shape[0]
    bs = step.batch_size
    order, minibatches = batches.epoch(rng)
    ys = y[order]
    onehot, flat = step.epoch_labels(ys)
    loss_sum = 0.0
    with contextlib.closing(minibatches):
        for start, xb in zip(range(0, n, bs), minibatches, strict=True):
            stop = start + bs
            loss = step(xb, onehot[start:stop], flat[start:stop], pred[start:stop], lr)
            if not math.isfinite(loss):
                raise NonFiniteError(
                    f"the training loss became {loss} in minibatch {start // bs + 1}", epoch
                )
            loss_sum += loss
    return loss_sum / n, int(np.count_nonzero(pred == ys)) / n


def optimizer_for(config: TrainConfig) -> Optimizer:
    """A new optimizer with the update rule and constants of ``config``."""
    return make_optimizer(
        config.optimizer,
        momentum=config.momentum,
        nesterov=config.nesterov,
        beta1=config.beta1,
        beta2=config.beta2,
        epsilon=config.epsilon,
    )


def train(
    model: MLP,
    X: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    *,
    rng: np.random.Generator,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    callback: Callable[[EpochRecord], None] | None = None,
    augment: Augment | None = None,
    augment_by_epoch: Callable[[int], Augment | None] | None = None,
    prefetch: bool = False,
    state: TrainState | None = None,
    stop_epoch: int | None = None,
) -> History:
    """Train ``model`` in place by minibatch gradient descent.

    Parameters
    ----------
    model:
        The network; its weights are updated in place.
    X, y:
        Training inputs (n, d) in the model's dtype (others are converted once) and
        integer labels (n,) in ``[0, k)``.
    config:
        The settings (:class:`TrainConfig`).
    rng:
        Drives the per-epoch shuffles and is passed to ``augment``.
    X_val, y_val:
        Optional validation data (m, d), (m,), evaluated after every epoch;
        required when ``config.patience`` is set.
    callback:
        Called with each epoch's :class:`EpochRecord` after the epoch.
    augment:
        ``augment(batch, rng) -> batch`` transforms each (b, d) minibatch.
    augment_by_epoch:
        Instead of ``augment``: called with each 1-based epoch as it starts, returns the
        epoch's ``augment`` (or None); for augmentations that change over the run.
    prefetch:
        Prepare the next minibatches in a background thread (:class:`nn.batches.Batches`);
        the same weights as without.
    state:
        Resume from here (see :class:`TrainState`), and keep it up to date; None: start
        at epoch 1 with a new optimizer.
    stop_epoch:
        Stop after this (1-based) epoch instead of ``config.epochs``; the learning-rate
        schedule still runs over ``config.epochs``.

    Returns
    -------
    History
        One record per epoch run by this call. With ``patience``, training stops after
        that many epochs without improvement and the weights of ``best_epoch`` are restored.

    Raises
    ------
    NonFiniteError
        The loss or the weights became NaN or infinite; ``.epoch`` says when.
    InputError, ConfigError
        Bad arrays or settings.
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    X, y = _check_data(model, X, y, "X", "y")
    if (X_val is None) != (y_val is None):
        raise InputError("give both X_val and y_val, or neither")
    has_val = X_val is not None
    if has_val:
        X_val, y_val = _check_data(model, X_val, y_val, "X_val", "y_val")
    if config.patience is not None and not has_val:
        raise ConfigError(f"patience={config.patience} needs validation data (X_val, y_val)")

    if augment is not None and augment_by_epoch is not None:
        raise ConfigError("give augment or augment_by_epoch, not both")
    state = TrainState() if state is None else state
    stop = config.epochs if stop_epoch is None else stop_epoch
    if not state.epoch <= stop <= config.epochs:
        raise ConfigError(
            f"stop_epoch={stop} must be in [{state.epoch}, {config.epochs}] (epochs done, epochs)"
        )
    if state.epoch and config.patience is not None:
        raise ConfigError(f"patience={config.patience} cannot resume a run (epoch {state.epoch})")
    if state.optimizer is None:
        state.optimizer = optimizer_for(config)
    bs = min(config.batch_size, X.shape[0])
    step = TrainStep(model, bs, state.optimizer, config.weight_decay)
    batches = Batches(X, bs, augment, prefetch=prefetch)
    pred = np.empty(X.shape[0], dtype=np.intp)
    flush_buffers = [(np.empty_like(p), np.empty(p.shape, dtype=bool)) for p in model.parameters()]

    history = History()
    best_loss, best_params, wait = math.inf, None, 0
    for epoch in range(state.epoch + 1, stop + 1):
        t0 = time.perf_counter()
        lr = learning_rate(
            config.schedule,
            epoch - 1,
            lr=config.lr,
            epochs=config.epochs,
            decay=config.decay,
            step_size=config.step_size,
            warmup_epochs=config.warmup_epochs,
        )
        if augment_by_epoch is not None:
            batches.augment = augment_by_epoch(epoch)
        with np.errstate(over="ignore", invalid="ignore"):
            train_loss, train_acc = _run_epoch(step, batches, pred, y, lr, epoch, rng)
        _check_finite(model, epoch)
        for p, (scratch, mask) in zip(model.parameters(), flush_buffers, strict=True):
            flush_subnormals(p, scratch, mask)
        state.epoch = epoch
        val_loss = val_acc = None
        if has_val:
            with np.errstate(over="ignore", invalid="ignore"):
                val_loss, val_acc = model.evaluate(X_val, y_val)
            if not math.isfinite(val_loss):
                raise NonFiniteError(f"the validation loss became {val_loss}", epoch)
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_acc,
            val_loss=val_loss,
            val_accuracy=val_acc,
            lr=lr,
            seconds=time.perf_counter() - t0,
        )
        history.records.append(record)
        if callback is not None:
            callback(record)
        if val_loss is None:
            history.best_epoch = epoch
            continue
        if val_loss < best_loss - config.min_delta:
            best_loss, wait, history.best_epoch = val_loss, 0, epoch
            if config.patience is not None:
                best_params = [p.copy() for p in model.parameters()]
        else:
            wait += 1
            if config.patience is not None and wait >= config.patience:
                history.stopped_early = True
                break
    if best_params is not None and history.best_epoch != history.records[-1].epoch:
        model.set_parameters(best_params)
    return history
