"""One trial of the random search, and the store that lets a killed search resume.

A trial never raises: a non-finite loss is recorded as ``diverged``, any other exception
as ``failed``, so one bad configuration never stops a search. A ``PreparedData`` reaches a
worker as paths and is memory-mapped there; :class:`TrialArrays` carries the arrays to
workers that cannot see those files.
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
    """The training and validation splits held in memory (float32 (n, d), int64 (n,)),
    for workers that cannot memory-map the prepared files (remote Dask workers)."""

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

    ``rung`` is the successive-halving round; ``base`` the settings every trial shares,
    under ``params``. The schedule spans ``horizon`` epochs (None: ``epochs``); the trial
    trains up to epoch ``epochs``, from its checkpoint after ``start`` epochs if any.
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

    ``val_accuracy``/``val_loss`` hold one value per epoch trained; ``best_val_accuracy``
    is their maximum (None if no epoch finished or not ``ok``); ``seconds`` the wall time;
    ``error`` the message of a diverged/failed trial; ``cached`` whether it came from the
    store; ``horizon`` the schedule's epochs; ``resumed`` the epoch it continued from.
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
    final model, so every point of the space is trainable.

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

    ``data`` is a ``PreparedData`` (memory-mapped here) or :class:`TrialArrays`;
    ``blas_threads`` None leaves BLAS as is; ``checkpoints`` is where the trial resumes
    from (after ``spec.start`` epochs, if there) and saves when it finishes (None: neither).
    """
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    status, error, resumed = "ok", None, 0
    try:
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
            threads=blas_threads,
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


class TrialStore:
    """Finished trials as ``<directory>/<key>.json``, one small file each, written
    atomically; ``identity`` (data, code versions) is part of every key."""

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
        """Write ``result`` atomically.

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
