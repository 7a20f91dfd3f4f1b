"""One trial of the random search, and the store that lets a killed search resume.

A trial builds a ``784-hidden-k`` network and trains it for ``epochs`` on the training split
with the sampled settings, scoring it on the validation split after every epoch. It never
raises: a network whose loss becomes non-finite is recorded as ``diverged``, any other
exception as ``failed`` with its message, so one bad configuration never stops a search.

The training arrays reach a worker without copies: a :class:`PreparedData`-like object is
sent (paths only) and memory-maps its ``.npy`` files in the worker; :class:`TrialArrays`
carries the arrays themselves for workers that cannot see those files (a Dask cluster).

:class:`TrialStore` keeps one small JSON file per finished trial, written atomically, named
by the content key (:mod:`tasks.cache`) of what determines the result: the data, the
parameters, seed and epochs, and the code versions of :func:`versions`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from nn.errors import NonFiniteError
from nn.train import TrainConfig, TrainState
from tasks.cache import content_key
from tasks.files import write_json_atomic
from tasks.fitting import fit as fitting
from tasks.fitting.fit import fit
from tasks.settings import resolve
from tasks.tuning.checkpoints import CheckpointStore
from tasks.tuning.space import PARAMETERS, Value, trial_seeds

__all__ = [
    "STATUSES",
    "ExtrasHandler",
    "TrialArrays",
    "TrialResult",
    "TrialSpec",
    "TrialStore",
    "budget_text",
    "config_from_params",
    "run_trial",
]

STATUSES = ("ok", "diverged", "failed")

CODE_VERSION = 1
"""Bump when a change in ``tasks/tuning/`` changes what a trial gives: every stored trial
and checkpoint is then trained anew (:func:`versions`)."""


def versions() -> dict[str, int]:
    """The code versions a trial's result depends on: the trial's and the training's."""
    return {"tuning": CODE_VERSION, "fitting": fitting.CODE_VERSION}


class TrialData(Protocol):
    """What a trial needs: ``load(mmap=...)`` giving ``X_train, y_train, X_val, y_val``."""

    name: str
    n_classes: int

    def load(self, mmap: bool = True) -> Any: ...


ExtrasHandler = Callable[[Mapping[str, Value], TrialData], Mapping[str, Any]]
"""``handler(extras, data) -> extra keyword arguments of nn.train.train`` (e.g. ``augment``).
It runs in the worker, so it must be a picklable (module-level) callable."""


@dataclass(frozen=True)
class TrialArrays:
    """The training and validation splits held in memory (float32 (n, d), int64 (n,)).

    Used where workers cannot memory-map the prepared ``.npy`` files (remote Dask workers):
    the arrays are scattered to the cluster once and shared by all trials there.
    """

    name: str
    n_classes: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray

    @classmethod
    def from_data(cls, data: TrialData) -> TrialArrays:
        """Read the splits of ``data`` into memory (the test split is left out)."""
        splits = data.load(mmap=True)
        return cls(
            data.name,
            int(data.n_classes),
            *(np.array(getattr(splits, name)) for name in ("X_train", "y_train", "X_val", "y_val")),
        )

    def load(self, mmap: bool = True) -> TrialArrays:
        """The arrays themselves (same interface as ``PreparedData.load``)."""
        return self


@dataclass(frozen=True)
class TrialSpec:
    """Trial ``index`` (0-based) of the run seeded ``seed``: its parameters and epochs.

    ``rung`` is the successive-halving round (0 without halving). ``base`` holds the
    settings every trial shares (the recipe's schedule, momentum, augmentation...), under
    ``params``. The learning-rate schedule spans ``horizon`` epochs (None: ``epochs``);
    the trial trains up to epoch ``epochs``, continuing from its checkpoint after
    ``start`` epochs when there is one.
    """

    index: int
    seed: int
    params: dict[str, Value]
    epochs: int
    rung: int = 0
    base: dict[str, Value] = field(default_factory=dict)
    horizon: int | None = None
    start: int = 0

    @property
    def schedule_epochs(self) -> int:
        """The epochs the trial's learning-rate schedule spans."""
        return self.epochs if self.horizon is None else self.horizon


@dataclass(frozen=True)
class TrialResult:
    """What a trial produced (``trial`` is the 0-based trial index).

    ``val_accuracy``/``val_loss`` hold one value per epoch trained (fewer than ``epochs``
    when it diverged); ``best_val_accuracy`` is their maximum (None if no epoch finished);
    ``seconds`` is the trial's wall time; ``error`` the message of a diverged/failed trial;
    ``cached`` tells that the result was read from the store instead of trained;
    ``horizon`` is the schedule's length in epochs and ``resumed`` the epoch the trial
    continued from (0: trained from the start in this round).
    """

    trial: int
    seed: int
    epochs: int
    rung: int
    params: dict[str, Value]
    status: str
    val_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_val_accuracy: float | None = None
    seconds: float = 0.0
    error: str | None = None
    cached: bool = False
    horizon: int | None = None
    resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (plain Python numbers and strings)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """The inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError`` on bad input."""
        names = {f.name for f in dataclasses.fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in names})
        if result.status not in STATUSES:
            raise ValueError(f"unknown trial status {result.status!r}")
        return result


def budget_text(trial: Mapping[str, Any]) -> str:
    """The epochs one round of a trial trained, from a ``TrialResult.to_dict()``.

    ``"epochs 4-9 of 27"``: continued from its checkpoint after epoch 3, up to epoch 9 of a
    schedule spanning 27; ``"epochs 1-9 of 27"`` trained from the start.
    """
    epochs = int(trial.get("epochs", 0))
    horizon = int(trial.get("horizon") or epochs)
    return f"epochs {int(trial.get('resumed') or 0) + 1}-{epochs} of {horizon}"


def config_from_params(
    params: Mapping[str, Value], *, epochs: int
) -> tuple[TrainConfig, int, dict[str, Value]]:
    """Split sampled parameters into (training settings, hidden units, extra parameters).

    The values are completed and repaired by :func:`tasks.settings.resolve`, as for the
    final model: ``nesterov`` off without momentum, the warm-up at most a quarter of
    ``epochs``, so every point of the space is trainable.

    Raises
    ------
    nn.errors.ConfigError
        If a setting is outside what :class:`TrainConfig` accepts.
    """
    known = {k: v for k, v in params.items() if k in PARAMETERS}
    values = resolve({**known, "epochs": epochs})
    config = TrainConfig.from_values(values)
    extras = {k: v for k, v in params.items() if k not in PARAMETERS}
    return config, int(values["hidden"][0]), extras


def run_trial(
    spec: TrialSpec,
    data: TrialData,
    *,
    blas_threads: int | None = None,
    extras_handler: ExtrasHandler | None = None,
    checkpoints: CheckpointStore | None = None,
) -> TrialResult:
    """Train and score one configuration; never raises for a bad configuration.

    Parameters
    ----------
    spec:
        The trial (parameters, seed, index, epochs).
    data:
        ``PreparedData`` (memory-mapped here) or :class:`TrialArrays`.
    blas_threads:
        BLAS threads for this trial (None: leave as is).
    extras_handler:
        Turns the extra parameters into keyword arguments of ``nn.train.train``.
    checkpoints:
        Where the trial resumes from (its checkpoint after ``spec.start`` epochs, if
        there) and saves its checkpoint when it finishes; None: neither.
    """
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    status, error, resumed = "ok", None, 0
    try:
        with _blas_limit(blas_threads):
            values = {**spec.base, **spec.params}
            config, hidden, extras = config_from_params(values, epochs=spec.schedule_epochs)
            splits = data.load(mmap=True)
            options = dict(extras_handler(extras, data)) if extras_handler and extras else {}
            rng = np.random.default_rng(trial_seeds(spec.seed, spec.index)[1])
            model, state = None, TrainState()
            loaded = None
            if checkpoints is not None and spec.start:
                loaded = checkpoints.load(spec, spec.start, config)
            if loaded is not None:
                model, state, rng, records = loaded
                resumed = state.epoch
            model, _ = fit(
                splits,
                [hidden],
                data.n_classes,
                config,
                rng=rng,
                callback=lambda record: records.append(record.to_dict()),
                model=model,
                state=state,
                stop_epoch=spec.epochs,
                **options,
            )
            if checkpoints is not None:
                checkpoints.save(spec, model, state, rng, records)
    except NonFiniteError as exc:
        status, error = "diverged", str(exc)
    except Exception as exc:  # a failed trial is recorded, never fatal to the search
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    accuracies = [float(r["val_accuracy"]) for r in records if r["val_accuracy"] is not None]
    return TrialResult(
        trial=spec.index,
        seed=spec.seed,
        epochs=spec.epochs,
        rung=spec.rung,
        params=dict(spec.params),
        status=status,
        val_accuracy=accuracies,
        val_loss=[float(r["val_loss"]) for r in records if r["val_loss"] is not None],
        best_val_accuracy=max(accuracies) if accuracies and status == "ok" else None,
        seconds=time.perf_counter() - start,
        error=error,
        horizon=spec.schedule_epochs,
        resumed=resumed,
    )


def _blas_limit(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to ``threads`` inside the block (no limit for None)."""
    return threadpool_limits(threads, user_api="blas") if threads else contextlib.nullcontext()


class TrialStore:
    """Finished trials as ``<directory>/<key>.json``, one small file each.

    Parameters
    ----------
    directory:
        Where the files live (created on first write).
    identity:
        What every key includes besides the trial: data checksums, code version, ...
    """

    FORMAT_VERSION = 1

    def __init__(self, directory: str | Path, identity: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.identity = dict(identity)

    def key(self, spec: TrialSpec) -> str:
        """Content key of the identity, the parameters, seed, index and epochs of ``spec``."""
        what = {"params": spec.params, "seed": spec.seed, "index": spec.index}
        if spec.base or spec.horizon is not None:  # a trial resumed or retrained: same result
            what.update(base=spec.base, horizon=spec.schedule_epochs)
        return content_key(identity=self.identity, epochs=spec.epochs, **what)

    def path(self, spec: TrialSpec) -> Path:
        """The file of ``spec``'s result."""
        return self.directory / f"{self.key(spec)}.json"

    def get(self, spec: TrialSpec) -> TrialResult | None:
        """The stored result of ``spec`` (marked ``cached``), or None if absent or unreadable."""
        try:
            stored = json.loads(self.path(spec).read_text(encoding="utf-8"))
            if stored.get("format_version") != self.FORMAT_VERSION:
                return None
            result = TrialResult.from_dict(stored["result"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        with contextlib.suppress(OSError):  # used: `mnist-flow cache --older-than` counts anew
            os.utime(self.path(spec))
        return dataclasses.replace(result, rung=spec.rung, cached=True)

    def put(self, spec: TrialSpec, result: TrialResult) -> Path:
        """Write ``result`` atomically (temporary file in the same folder, then rename).

        Raises
        ------
        OSError
            If the folder cannot be created or written.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(spec)
        payload = {
            "format_version": self.FORMAT_VERSION,
            "key": target.stem,
            "identity": self.identity,
            "result": dataclasses.replace(result, cached=False).to_dict(),
        }
        write_json_atomic(target, payload, indent=1, allow_nan=True)
        return target
