"""Prefect task ``random_search``: the hyperparameter search of the pipeline.

A thin wrapper over :func:`tasks.tuning.runner.run_search`. The trials run in joblib
workers, which have no Prefect run context, so they only return results; this task logs
each one as it arrives, publishes the trial table as the ``mnist-trials`` artifact and
returns the best parameters to the flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.data.datasets import resolve_cache_dir
from tasks.data.prepare import PreparedData
from tasks.outputs.tables import tidy_columns
from tasks.settings import resolve
from tasks.settings.params import SearchParams
from tasks.tuning.anchor import recipe_point, recipe_space, trial_base
from tasks.tuning.extras import augment_extras
from tasks.tuning.overrides import build_space
from tasks.tuning.runner import OnTrial, SearchResult, halving_rungs, run_search
from tasks.tuning.space import PARAMETERS, Value
from tasks.tuning.trials import ExtrasHandler, TrialResult, budget_text

__all__ = [
    "ARTIFACT_KEY",
    "format_trial",
    "random_search",
    "tidy_trial_table",
    "trial_table",
    "trials_caption",
]

ARTIFACT_KEY = "mnist-trials"

_SHORT = {"batch_size": "batch", "weight_decay": "wd", "warmup_epochs": "warmup"}


def _fmt(value: Value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_params(params: Mapping[str, Value]) -> str:
    """``lr=0.031 batch=64 ...``: known parameters in table order, then the extras."""
    names = [n for n in PARAMETERS if n in params] + sorted(
        n for n in params if n not in PARAMETERS
    )
    return " ".join(f"{_SHORT.get(n, n)}={_fmt(params[n])}" for n in names)


def format_trial(result: TrialResult, done: int, total: int) -> str:
    """One log line: ``trial 7/20 (#3, 1 epoch): lr=0.031 ... -> val_acc=0.912 in 3.1 s``."""
    epochs = (
        budget_text(result.to_dict())
        if result.horizon
        else f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}"
    )
    where = (
        f"#{result.trial}, round {result.rung + 1}, {epochs}"
        if result.rung
        else f"#{result.trial}, {epochs}"
    )
    if result.status == "ok":
        outcome = f"val_acc={result.best_val_accuracy:.4f}"
    else:
        outcome = f"{result.status}: {result.error}"
    source = " (from the trial store)" if result.cached else ""
    return (
        f"trial {done}/{total} ({where}): {format_params(result.params)} -> {outcome} "
        f"in {result.seconds:.1f} s{source}"
    )


def trial_table(result: SearchResult) -> list[dict[str, Any]]:
    """Rows of the trial table (plain Python numbers and strings), one per trial run."""
    rows = []
    for t in result.trials:
        best = t["best_val_accuracy"]
        row: dict[str, Any] = {
            "trial": int(t["trial"]),
            "round": int(t["rung"]) + 1,
            "epochs": int(t["epochs"]),
            "budget": budget_text(t),
            "status": str(t["status"]),
            "best_val_acc": None if best is None else round(float(best), 4),
            "last_val_loss": round(float(t["val_loss"][-1]), 4) if t["val_loss"] else None,
            "seconds": round(float(t["seconds"]), 2),
            "cached": "yes" if t["cached"] else "no",
        }
        for name, value in t["params"].items():
            row[name] = float(f"{value:.4g}") if isinstance(value, float) else value
        row["error"] = str(t["error"] or "")
        rows.append(row)
    return rows


def tidy_trial_table(result: SearchResult) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trial table as shown: the trial and its tuned parameters first, then the score;
    the columns that hold one value in every row are left out (and returned apart)."""
    names = {name for t in result.trials for name in t["params"]}
    params = [n for n in PARAMETERS if n in names] + sorted(names - PARAMETERS.keys())
    first = ["trial", "round", *params, "best_val_acc", "last_val_loss"]
    return tidy_columns(trial_table(result), first=first, keep=("trial", "best_val_acc"))


def trials_caption(mode: str, result: SearchResult, dataset: str, same: dict[str, Any]) -> str:
    """The trial table's description: trials (and trial runs with halving), the best, the
    values every row shares, where the trials ran."""
    n_trials = len({t["trial"] for t in result.trials})
    rounds = {t["rung"] for t in result.trials}
    count = f"{n_trials} trial{'s' if n_trials != 1 else ''}"
    if len(rounds) > 1:
        count += f" in {len(rounds)} rounds ({len(result.trials)} trial runs)"
    text = f"{mode} on {dataset}: {count}, best #{result.best_trial}"
    shared = [f"{k}={v}" for k, v in same.items() if v not in ("", None)]
    if shared:
        text += "; in every row: " + ", ".join(shared)
    if result.placement:
        text += f"; ran on {result.placement['where']}"
    return text


@task(name="random-search", cache_policy=NO_CACHE)
def random_search(
    data: PreparedData,
    search: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    space_overrides: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
    on_trial: OnTrial | None = None,
    extras_handler: ExtrasHandler | None = None,
    recipe: Mapping[str, Any] | None = None,
    keep_best: bool = False,
) -> SearchResult:
    """Random search over the hyperparameters; logs each trial, returns the best parameters.

    ``search`` holds :class:`tasks.settings.params.SearchParams` settings (defaults for
    those left out); ``space_overrides`` take the syntax of :mod:`tasks.tuning.overrides`;
    finished trials are kept under ``cache_dir`` (default cache if None). Extra parameters
    go to ``extras_handler`` (default :func:`tasks.tuning.extras.augment_extras`).

    With a ``recipe`` the search is anchored on it (:mod:`tasks.tuning.anchor`); a recipe
    the space leaves out is named in ``result.choice["recipe_excluded"]``. ``keep_best``
    keeps the chosen trial's last checkpoint for the final model to continue.
    """
    logger = get_run_logger()
    fields = SearchParams.model_fields
    given = {key: value for key, value in (search or {}).items() if key in fields}
    settings = SearchParams(**given).model_dump()
    n_trials, trial_epochs = settings["trials"], settings["trial_epochs"]
    backend, halving = settings["backend"], settings["halving"]
    base = reference = excluded = None
    if recipe is not None:
        space = build_space(space_overrides, recipe_space(recipe))
        base = trial_base(recipe, trial_epochs)
        reference, excluded = recipe_point(space, recipe)
        if excluded:
            logger.warning(f"the search space leaves the recipe out ({excluded})")
    else:
        space = build_space(space_overrides)
    described = " ".join(f"{name}={spec}" for name, spec in space.describe().items())
    halves = halving and len(halving_rungs(n_trials, trial_epochs)) > 1
    mode = "successive halving" if halves else "random search"
    logger.info(
        f"{mode}: {n_trials} trials x {trial_epochs} epochs on {backend}, space {described}"
    )

    def report(result: TrialResult, done: int, total: int) -> None:
        logger.info(format_trial(result, done, total))
        if on_trial is not None:
            on_trial(result, done, total)

    data.verify()  # once here, not in every trial's worker
    result = run_search(
        data,
        space,
        n_trials=n_trials,
        trial_epochs=trial_epochs,
        seed=seed,
        n_jobs=settings["n_jobs"],
        backend=backend,
        dask_address=settings["dask_address"],
        halving=halving,
        cache_dir=resolve_cache_dir(cache_dir),
        on_trial=report,
        extras_handler=extras_handler or augment_extras,
        base=base,
        reference=reference,
        keep_checkpoints=settings["keep_checkpoints"],
        keep_best=keep_best,
        logger=logger,
    )
    if excluded:
        result.choice["recipe_excluded"] = excluded
    if base is not None:  # what the chosen trial trained with (final_start compares)
        result.choice["settings"] = resolve({**base, **result.best_params, "epochs": trial_epochs})
    if result.choice.get("reason"):
        logger.info(f"kept {result.choice['chosen']}: {result.choice['reason']}")
    rows, same = tidy_trial_table(result)
    create_table_artifact(
        key=ARTIFACT_KEY, table=rows, description=trials_caption(mode, result, data.name, same)
    )
    logger.info(
        f"best trial #{result.best_trial}: val_acc={result.best_val_accuracy:.4f} "
        f"{format_params(result.best_params)} ({result.n_trained} trained, "
        f"{result.n_cached} from the store, {result.seconds:.1f} s) on "
        f"{result.placement.get('where', backend)}"
    )
    return result
