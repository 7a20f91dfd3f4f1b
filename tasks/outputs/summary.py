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

    Parameters
    ----------
    kind:
        ``"train"`` or ``"pipeline"``.
    test_metrics:
        The evaluation's metrics (accuracy, loss, per-class scores, confusion matrix).
    final:
        The trained model (:class:`tasks.train.FinalModel`): history, best epoch.
    params:
        Every parameter of the run, by group (``data``, ``train``, ``options``, ``search``).
    files, prepared:
        The fetched dataset (name, checksums) and its preparation (preprocessing).
    seed:
        The run's seed.
    decision:
        The registry's decision (:class:`tasks.registry.promotion.PromotionDecision`), or
        None for a model that is not registered.
    not_registered:
        Why the model is not registered: it diverged or is at chance level
        (:mod:`tasks.registry.promotion`).
    search:
        The search's trials and best trial, for a pipeline.
    lineage:
        The data version (``"base"``: nothing added) and the added images
        (:meth:`tasks.data.versions.Added.lineage`), recorded under ``dataset``.
    eval_set:
        The model's scores on the test set plus the held-out added images, when data
        was added (:func:`tasks.scoring.testset.eval_set_scores`).
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
        line = f"{decision.challenger_version} {decision.verdict} ({decision.reason})"
    return {
        "run_dir": str(run_dir),
        "model_path": str(model_path),
        "test_accuracy": float(test_metrics["test_accuracy"]),
        "test_loss": float(test_metrics["test_loss"]),
        "decision": line,
    }
