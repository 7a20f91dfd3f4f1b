"""Random search: sample trials, run them in parallel, resume from the trial store.

Trials run through :class:`joblib.Parallel` as an unordered generator, so each result is
reported and stored as soon as it finishes. Loky workers memory-map the prepared files
and share the cores' BLAS threads; Dask workers may not see this machine's files, so the
splits are scattered to them once.

With ``halving`` (successive halving) every trial's schedule spans ``trial_epochs``, so a
round is a stretch of one run: a promoted trial resumes from its checkpoint and ends
exactly where a trial trained in one go would. With a ``reference`` (the recipe) trial 0
is the reference, promoted to every round and kept unless beaten.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from nn.errors import ConfigError
from tasks.errors import CacheError, SearchError
from tasks.settings.params import BACKENDS, SearchParams
from tasks.tuning.checkpoints import CheckpointStore
from tasks.tuning.choice import choose, score_on_test
from tasks.tuning.cluster import Placement, check_backend, probe_scheduler, wait_for_workers
from tasks.tuning.space import SearchSpace, Value
from tasks.tuning.trials import (
    ExtrasHandler,
    TrialArrays,
    TrialData,
    TrialResult,
    TrialSpec,
    TrialStore,
    run_trial,
    versions,
)

__all__ = ["BACKENDS", "SearchResult", "data_fingerprint", "halving_rungs", "run_search"]

_SEARCH = SearchParams()  # the declared defaults
DASK_CONNECT_TIMEOUT = "15s"
"""How long to try to reach the Dask scheduler before giving up."""
DASK_WORKERS_TIMEOUT = 60
"""Seconds to wait for a first worker on a scheduler that has none."""

OnTrial = Callable[[TrialResult, int, int], None]
"""``on_trial(result, done, total)``: called in the parent as each trial finishes."""


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search.

    ``trials`` holds one :meth:`TrialResult.to_dict` per trial run, ordered by round then
    trial; ``best_*`` describe the chosen trial of the last round; ``choice`` says what was
    chosen and why (:func:`tasks.tuning.choice.choose`); ``checkpoint`` is the chosen
    trial's last checkpoint when the search was asked to keep it.
    """

    trials: list[dict[str, Any]]
    best_params: dict[str, Value]
    best_val_accuracy: float
    best_trial: int
    seconds: float
    n_trained: int
    n_cached: int
    placement: dict[str, Any] = field(default_factory=dict)
    choice: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None


def halving_rungs(n_trials: int, trial_epochs: int, factor: int = 3) -> list[tuple[int, int]]:
    """The rounds of successive halving as ``(trials, epochs)`` pairs.

    Round ``k`` of ``R`` trains ``ceil(n_trials / factor**k)`` trials for
    ``trial_epochs // factor**(R-1-k)`` epochs; ``R`` is as large as possible while the
    first round trains at least one epoch and every round keeps fewer trials:
    ``halving_rungs(12, 9) == [(12, 1), (4, 3), (2, 9)]``.
    """
    rounds = 1
    while factor**rounds <= trial_epochs and math.ceil(n_trials / factor ** (rounds - 1)) > 1:
        rounds += 1
    return [
        (math.ceil(n_trials / factor**k), trial_epochs // factor ** (rounds - 1 - k))
        for k in range(rounds)
    ]


def data_fingerprint(data: TrialData) -> str:
    """What names the training and validation data a trial sees: a ``PreparedData``'s
    ``key``, or the SHA-256 of arrays held in memory."""
    key = getattr(data, "key", None)
    if isinstance(key, str):
        return key
    digest = hashlib.sha256()
    splits = data.load(mmap=True)
    for name in ("X_train", "y_train", "X_val", "y_val"):
        array = np.ascontiguousarray(getattr(splits, name))
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _check_args(
    n_trials: int, trial_epochs: int, seed: int, n_jobs: int, backend: str,
    dask_address: str | None, factor: int,
) -> None:  # fmt: skip
    for name, value, low in (("n_trials", n_trials, 1), ("trial_epochs", trial_epochs, 1),
                             ("seed", seed, 0), ("halving_factor", factor, 2)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}={value!r} must be an integer >= {low}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ConfigError(f"n_jobs={n_jobs!r} must be a non-zero integer (-1: all cores)")
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if dask_address is not None and backend != "dask":
        raise ConfigError(f"dask_address={dask_address!r} needs backend='dask'")
    check_backend(backend, dask_address)


@contextlib.contextmanager
def _workers(
    backend: str, n_jobs: int, dask_address: str | None, data: TrialData, logger: Any = None
) -> Iterator[tuple[TrialData, int, Placement]]:
    """Configure joblib for ``backend``; yields (data for the workers, BLAS threads, placement)."""
    if backend == "loky":
        jobs = joblib.effective_n_jobs(n_jobs)
        with joblib.parallel_config(backend="loky", n_jobs=n_jobs):
            yield data, max(1, joblib.cpu_count() // jobs), Placement("loky", None, jobs, jobs)
        return
    from distributed import Client, LocalCluster

    cluster = None
    if dask_address is None:  # no cluster given: a local one, one process per job
        workers = joblib.effective_n_jobs(n_jobs)
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        )
        dask_address = cluster.scheduler_address
    else:
        probe_scheduler(dask_address)  # a web port would hang Dask's client
    try:
        client = Client(dask_address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise SearchError(f"cannot reach the Dask scheduler at {dask_address}: {exc}") from exc
    try:
        wait_for_workers(client, dask_address, DASK_WORKERS_TIMEOUT, logger)
        threads = client.nthreads()
        placement = Placement("dask", dask_address, len(threads), sum(threads.values()))
        arrays = TrialArrays.from_data(data)
        with joblib.parallel_config(backend="dask", client=client, scatter=[arrays]):
            yield arrays, 1, placement
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_round(
    specs: Sequence[TrialSpec],
    data: TrialData,
    store: TrialStore | None,
    *,
    blas_threads: int,
    extras_handler: ExtrasHandler | None,
    checkpoints: CheckpointStore | None,
) -> Iterator[TrialResult]:
    """Yield stored results first, then the others as they finish (persisting each)."""
    pending = []
    for spec in specs:
        cached = store.get(spec) if store is not None else None
        if cached is not None:
            yield cached
        else:
            pending.append(spec)
    if not pending:
        return
    by_key = {(s.index, s.epochs): s for s in pending}
    parallel = joblib.Parallel(return_as="generator_unordered", batch_size=1)
    jobs = (
        joblib.delayed(run_trial)(
            spec,
            data,
            blas_threads=blas_threads,
            extras_handler=extras_handler,
            checkpoints=checkpoints,
        )
        for spec in pending
    )
    for result in parallel(jobs):
        if store is not None and result.status != "failed":
            spec = by_key[(result.trial, result.epochs)]
            try:
                store.put(spec, result)
            except OSError as exc:
                raise CacheError(
                    f"cannot store trial {result.trial} in {store.directory}: {exc}"
                ) from exc
        yield result


def _rank(result: TrialResult) -> tuple[float, int]:
    score = result.best_val_accuracy if result.status == "ok" else None
    return (-math.inf if score is None else score, -result.trial)


def run_search(
    data: TrialData,
    space: SearchSpace,
    *,
    n_trials: int = _SEARCH.trials,
    trial_epochs: int = _SEARCH.trial_epochs,
    seed: int = 0,
    n_jobs: int = _SEARCH.n_jobs,
    backend: str = _SEARCH.backend,
    dask_address: str | None = None,
    halving: bool = False,
    halving_factor: int = 3,
    cache_dir: str | Path | None = None,
    on_trial: OnTrial | None = None,
    extras_handler: ExtrasHandler | None = None,
    base: dict[str, Value] | None = None,
    reference: dict[str, Value] | None = None,
    keep_checkpoints: bool = False,
    keep_best: bool = False,
    logger: Any = None,
) -> SearchResult:
    """Run a random search over ``space`` and return every trial and the best parameters.

    Parameters
    ----------
    data:
        ``PreparedData`` (or :class:`TrialArrays`): training and validation splits.
    space:
        The search space; trial ``i`` uses ``space.sample(seed, i)``.
    n_trials, trial_epochs, seed:
        Number of configurations, epochs per trial (last round with halving), run seed.
    n_jobs:
        Trials at once with loky (-1: all cores); a Dask cluster uses all its threads.
    backend, dask_address:
        ``"loky"`` or ``"dask"``; the scheduler ``tcp://host:port``, or None for a local
        cluster of ``n_jobs`` single-threaded processes.
    halving, halving_factor:
        Successive halving with this reduction factor (see :func:`halving_rungs`).
    cache_dir:
        Finished trials are stored in ``<cache_dir>/trials`` and reused (None: no store).
    on_trial, extras_handler:
        See :data:`OnTrial` and :data:`tasks.tuning.trials.ExtrasHandler`.
    base, reference:
        Settings every trial shares under its sampled parameters; trial 0's parameters
        (the recipe), promoted to every round (None: trial 0 is sampled).
    keep_checkpoints, keep_best:
        Keep every trial checkpoint, or only the chosen trial's last one; default: none.
    logger:
        Where to say that a Dask scheduler has no worker yet.

    Raises
    ------
    nn.errors.ConfigError
        For an argument out of range, or data without a validation split.
    SearchError
        If the Dask scheduler is unreachable or no trial of the last round succeeded.
    tasks.errors.CacheError
        If a finished trial cannot be written to the store.
    """
    _check_args(n_trials, trial_epochs, seed, n_jobs, backend, dask_address, halving_factor)
    if space.extras and extras_handler is None:
        raise ConfigError(
            f"search parameters {list(space.extras)} are not known to the trainer; "
            "pass an extras_handler that turns them into training options"
        )
    n_val = getattr(data, "n_val", None)
    if n_val is None:  # arrays in memory
        X_val = data.load(mmap=True).X_val
        n_val = 0 if X_val is None else len(X_val)
    if not n_val:
        raise ConfigError("the random search needs a validation split (val_size > 0)")
    start_time = time.perf_counter()
    rounds = (
        halving_rungs(n_trials, trial_epochs, halving_factor)
        if halving
        else [(n_trials, trial_epochs)]
    )
    store = checkpoints = None
    scratch = None
    identity = {"data": data_fingerprint(data), "code": versions()}
    if cache_dir is not None:
        store = TrialStore(Path(cache_dir) / "trials", identity)
        checkpoints = CheckpointStore(Path(cache_dir) / "checkpoints", identity)
    elif len(rounds) > 1:
        scratch = tempfile.TemporaryDirectory(prefix="mnist-flow-checkpoints-")
        checkpoints = CheckpointStore(scratch.name, identity)
    params = {i: space.sample(seed, i) for i in range(n_trials)}
    if reference is not None:
        params[0] = dict(reference)
    shared = dict(base or {})
    results: list[TrialResult] = []
    survivors = list(range(n_trials))
    specs: list[TrialSpec] = []
    try:
        with _workers(backend, n_jobs, dask_address, data, logger) as (payload, blas, placement):
            for rung, (count, epochs) in enumerate(rounds):
                if rung:
                    previous = [r for r in results if r.rung == rung - 1 and r.status == "ok"]
                    ranked = sorted(previous, key=_rank, reverse=True)
                    survivors = [r.trial for r in ranked[:count]]
                    if reference is not None and 0 in {r.trial for r in previous}:
                        survivors = sorted({*survivors, 0})
                start = rounds[rung - 1][1] if rung else 0
                later = sum(n + (reference is not None) for n, _ in rounds[rung + 1 :])
                total = len(results) + len(survivors) + later
                specs += [
                    TrialSpec(i, seed, params[i], epochs, rung, shared, trial_epochs, start)
                    for i in sorted(survivors)
                ]
                for result in _run_round(
                    [s for s in specs if s.rung == rung],
                    payload,
                    store,
                    blas_threads=blas,
                    extras_handler=extras_handler,
                    checkpoints=checkpoints,
                ):
                    results.append(result)
                    if on_trial is not None:
                        on_trial(result, len(results), total)
        results.sort(key=lambda r: (r.rung, r.trial))
        final = [r for r in results if r.rung == len(rounds) - 1 and r.status == "ok"]
        if not final:
            errors = "; ".join(f"trial {r.trial}: {r.status} ({r.error})" for r in results[-3:])
            raise SearchError(f"no trial of the search finished successfully; last: {errors}")
        top = max(final, key=_rank)
        chosen, choice = choose(final, top, reference is not None, n_val)
        kept = None
        if checkpoints is not None:
            last = {s.index: s for s in specs if s.rung == len(rounds) - 1}
            choice.update(score_on_test(checkpoints, last, choice, data))
            path = checkpoints.path(last[chosen.trial], rounds[-1][1])
            kept = path if keep_best and scratch is None and path.is_file() else None
            if not keep_checkpoints:
                checkpoints.remove(specs, keep=kept)
    finally:
        if scratch is not None:
            scratch.cleanup()
    return SearchResult(
        trials=[r.to_dict() for r in results],
        best_params=dict(chosen.params),
        best_val_accuracy=float(chosen.best_val_accuracy),
        best_trial=chosen.trial,
        seconds=time.perf_counter() - start_time,
        n_trained=sum(not r.cached for r in results),
        n_cached=sum(r.cached for r in results),
        placement=placement.to_dict(),
        choice=choice,
        checkpoint=None if kept is None else str(kept),
    )
