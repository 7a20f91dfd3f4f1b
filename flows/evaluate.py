"""``mnist_evaluate``: evaluate a saved model (default: the dataset's champion) on its test set.

fetch -> evaluation (with the model's own preprocessing) -> ``metrics.json`` and the
report in a run directory. Nothing is registered.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.runtime import flow_run

from flows.common import cache_root, fetch_files, report_and_save, tag_flow_run
from flows.params import DataParams
from tasks.evaluate import evaluate_model
from tasks.outputs.rundir import Timings, check_out_dir, run_dir_path, staged_run_dir, versions
from tasks.registry.store import Registry


@flow(name="mnist-evaluate", flow_run_name="evaluate-{data.dataset}", validate_parameters=True)
def mnist_evaluate(
    model_path: str | None = None,
    data: DataParams = DataParams(),  # noqa: B008 - pydantic models are immutable
    out_dir: str | None = None,
    registry_dir: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_path`` (default: the champion) on ``data.dataset``'s test set."""
    logger = get_run_logger()
    check_out_dir(out_dir)
    timings = Timings()
    tag_flow_run(data.dataset, "evaluate")
    with tags(data.dataset, "evaluate"):
        if model_path is None:
            model_path = str(Registry(registry_dir).model_path(dataset=data.dataset))
            logger.info("evaluating the registry's champion %s", model_path)
        cache_dir = cache_root(data)
        with timings.step("fetch"):
            files = fetch_files(data, cache_dir)
        with timings.step("evaluate"):
            evaluator = evaluate_model.with_options(task_run_name=f"evaluate-{data.dataset}")
            evaluation = evaluator(model_path, files)
        metrics: dict[str, Any] = {
            "kind": "evaluate",
            **evaluation.metrics,
            "model": str(model_path),
            "params": {"data": data.model_dump(), "model_path": str(model_path)},
            "dataset": {"name": files.name, "checksums": dict(files.checksums)},
            "versions": versions(),
        }
        run_dir = run_dir_path(out_dir, flow_run.name)
        with staged_run_dir(run_dir) as staging:
            report_and_save(
                staging, metrics, evaluation, timings, data.dataset, display_dir=str(run_dir)
            )
        return {
            "run_dir": str(run_dir),
            "model_path": str(model_path),
            "test_accuracy": float(metrics["test_accuracy"]),
            "test_loss": float(metrics["test_loss"]),
            "decision": None,
        }


if __name__ == "__main__":
    mnist_evaluate()
