"""What a run records: the content of ``metrics.json`` and the summary a flow returns."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.outputs.rundir import versions

__all__ = ["run_metrics", "run_summary"]


def run_metrics(
    kind: str,
    test_metrics: Mapping[str, Any],
    final: Any,
    *,
    params: Mapping[str, Any],
    files: Any,
    prepared: Any,
    seed: int,
    decision: Any,
    not_registered: str | None = None,
    search: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    eval_set: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of ``metrics.json`` (the step timings are added once the report is written).

    ``kind``: ``"train"`` or ``"pipeline"``; ``final``: the :class:`tasks.train.FinalModel`;
    ``params``: every parameter of the run, by group; ``files``, ``prepared``: the fetched
    and prepared dataset; ``decision``: the registry's
    :class:`~tasks.registry.promotion.PromotionDecision`, or None with ``not_registered``
    saying why; ``search``: the pipeline's search; ``lineage``: the data version and added
    images (:meth:`tasks.data.versions.Added.lineage`); ``eval_set``: the scores on the test
    set plus the held-out added images (:func:`tasks.scoring.testset.eval_set_scores`).
    """
    metrics: dict[str, Any] = {
        "kind": kind,
        **test_metrics,
        "history": final.history,
        "best_epoch": final.best_epoch,
        "stopped_early": final.stopped_early,
        "params": dict(params),
        "dataset": {
            "name": files.name,
            "checksums": dict(files.checksums),
            "preprocessing": dict(prepared.preprocessing),
            "n_train": int(prepared.n_train),
            "n_val": int(prepared.n_val),
            **(lineage or {"version": "base", "n_added": 0}),
        },
        "seed": seed,
        "versions": versions(),
        "registry": None if decision is None else decision.to_dict(),
        "not_registered": not_registered,
    }
    if search is not None:
        metrics["search"] = dict(search)
    if eval_set is not None:
        metrics["eval_set"] = dict(eval_set)
    return metrics


def run_summary(
    run_dir: Path,
    model_path: Path,
    test_metrics: Mapping[str, Any],
    decision: Any,
    line: str | None = None,
) -> dict[str, Any]:
    """What a flow returns: run directory, model, test accuracy and loss, the registry's line.

    ``line`` replaces the decision's line (a model that was not registered).
    """
    if line is None:
        verdict, reason = decision.verdict, decision.reason
        said = reason if reason.startswith(verdict) else f"{verdict} ({reason})"
        line = f"{decision.challenger_version} {said}"
    return {
        "run_dir": str(run_dir),
        "model_path": str(model_path),
        "test_accuracy": float(test_metrics["test_accuracy"]),
        "test_loss": float(test_metrics["test_loss"]),
        "decision": line,
    }
