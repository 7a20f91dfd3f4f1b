"""Steps shared by the flows: the data, the final model, and the run directory's outputs.

``prepare_data`` runs fetch -> preprocess; ``train_and_report`` runs the final training,
evaluation, registration (and approval), then writes the report and ``metrics.json``
from the settled decision. What a re-run reuses is kept in ``<cache_dir>``
(:mod:`tasks.cache`); Prefect caches nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from prefect import get_run_logger
from prefect.runtime import flow_run

from flows.approval import register_with_approval
from flows.params import DataParams, RunOptions, TrainParams
from tasks.check_data import check_data
from tasks.data.datasets import ensure_dir, resolve_cache_dir
from tasks.data.versions import Added, DataStore
from tasks.errors import DataGateError, DivergedError, OutputError
from tasks.evaluate import evaluate_model, score_same_set
from tasks.fetch import fetch
from tasks.outputs.rundir import Timings, copy_model, run_dir_path, staged_run_dir, write_json
from tasks.outputs.summary import run_metrics, run_summary
from tasks.preprocess import preprocess
from tasks.register import register_model
from tasks.registry.promotion import chance_level, divergence
from tasks.report import write_report
from tasks.train import train_final


def tag_flow_run(*names: str) -> None:
    """Add ``names`` to the current flow run's tags, through the API: the run exists
    before its body runs, so ``prefect.tags`` only reaches its task runs."""
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context

    flow_run = get_run_context().flow_run
    if flow_run is None:  # pragma: no cover - always set inside a flow
        return
    merged = sorted({*(flow_run.tags or []), *names})
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, tags=merged)


def cache_root(data: DataParams) -> Path:
    """The absolute cache directory of a run (created if missing)."""
    return ensure_dir(resolve_cache_dir(data.cache_dir))


def fetch_files(data: DataParams, cache_dir: Path) -> Any:
    """Run the fetch task (cached, retried ``data.fetch_retries`` times on network errors)."""
    fetcher = fetch.with_options(task_run_name=f"fetch-{data.dataset}", retries=data.fetch_retries)
    return fetcher(
        dataset=data.dataset,
        data_dir=data.data_dir,
        mirror=data.mirror,
        cache_dir=str(cache_dir),
        return_state=True,  # a reuse returns its Cached state (tasks.cache.reused)
    ).result()


class DataSteps(NamedTuple):
    """What fetch and preprocess give the later steps."""

    files: Any  # tasks.data.datasets.DatasetFiles
    prepared: Any  # tasks.data.prepare.PreparedData
    cache_dir: Path
    added: Added  # the batches added with `mnist-flow data add` that the run uses
    check: Any = None  # tasks.data.check.DataCheck of the new batches, None without any


def prepare_data(
    data: DataParams, seed: int, timings: Timings, registry_dir: str | None = None
) -> DataSteps:
    """Fetch, check the added batches of ``data.data_version`` and preprocess the dataset.

    Raises :class:`DataGateError` when the data check finds the new batches broken (the
    ``mnist-data-check`` artifact says why), before any training.
    """
    cache_dir = cache_root(data)
    added = DataStore(data.data_store).added(data.dataset, data.data_version)
    if added.ids:
        get_run_logger().info(
            "data version %s: the base dataset plus %d added batches", added.version, len(added.ids)
        )
    with timings.step("fetch"):
        files = fetch_files(data, cache_dir)
    check = None
    if added.ids:
        with timings.step("check-data"):
            check = check_data(files, added, registry_dir, data.data_store)
        if not check.passed:
            raise DataGateError(f"data check of {data.dataset}: {check.reason}")
    with timings.step("preprocess"):
        return preprocess_files(data, files, seed, cache_dir, added, check)


def preprocess_files(
    data: DataParams, files: Any, seed: int, cache_dir: Path, added: Any, check: Any = None
) -> DataSteps:
    """Preprocess fetched ``files`` as ``data`` says (split, subset, standardisation)."""
    subset = f"train{data.train_size}" if data.train_size else "train-all"
    val = "auto" if data.val_size is None else data.val_size
    name = f"preprocess-{data.dataset}-{subset}-val{val}"
    prepared = preprocess.with_options(task_run_name=name)(
        files,
        val_size=data.val_size,
        train_size=data.train_size,
        standardize=data.standardize,
        seed=seed,
        cache_dir=str(cache_dir),
        added=added if added.ids else None,
        return_state=True,
    ).result()
    return DataSteps(files, prepared, cache_dir, added, check)


def report_and_save(
    run_dir: Path,
    metrics: dict[str, Any],
    evaluation: Any,
    timings: Timings,
    dataset: str,
    **extras: Any,
) -> None:
    """Write the report (``extras`` go to :func:`tasks.report.write_report`), then
    ``metrics.json`` with the timings, the report's included."""
    with timings.step("report"):
        write_report.with_options(task_run_name=f"report-{dataset}")(
            str(run_dir),
            metrics,
            images_for_errors=evaluation.images,
            y_true=evaluation.y_true,
            y_pred=evaluation.y_pred,
            **extras,
        )
    metrics["timings"] = timings.to_dict()
    write_json(run_dir / "metrics.json", metrics)


def not_registered(reason: str) -> str:
    return (
        "### Not registered: the model diverged or learned nothing\n\n"
        f"The {reason}; such a model is never a candidate for promotion. A lower "
        "learning rate (`--lr`), a larger `--batch-size` or more epochs usually help.\n"
    )


def train_and_report(
    kind: str,
    data: DataParams,
    steps: DataSteps,
    hyper: TrainParams,
    options: RunOptions,
    timings: Timings,
    *,
    search: dict[str, Any] | None = None,
    search_params: dict[str, Any] | None = None,
    parameters_used: list[dict[str, Any]] | None = None,
    start_from: str | None = None,
) -> dict[str, Any]:
    """Final training, evaluation, registration (and approval), then the run directory.

    Decide, then narrate: the registry and a person's answer settle the outcome first;
    the run directory is then written from that decision in a staging folder and moved
    into place, so no record can run ahead of the registry. A diverged model gets its
    report, is not registered and fails the run (:class:`~tasks.errors.DivergedError`);
    a model at chance level is not registered and the run succeeds. ``start_from`` is a
    search trial's checkpoint the final training continues.

    Returns ``run_dir``, ``model_path``, ``test_accuracy``, ``test_loss`` and
    ``decision`` (one line).
    """
    logger = get_run_logger()
    files, prepared, cache_dir, added, check = steps
    params = hyper.model_dump()
    with timings.step("train"):
        final = train_final(
            prepared,
            params,
            seed=options.seed,
            cache_dir=str(cache_dir),
            threads=options.threads,
            start_from=start_from,
            return_state=True,
        ).result()
    with timings.step("evaluate"):
        evaluator = evaluate_model.with_options(task_run_name=f"evaluate-{data.dataset}")
        evaluation = evaluator(str(final.model_path), files)
    test_metrics = evaluation.metrics
    lineage = added.lineage() if added.ids else {"version": "base", "n_added": 0}
    eval_set, scores = None, None
    if added.ids:  # challenger and champion on the test set plus the held-out added images
        eval_set, scores = score_same_set(str(final.model_path), files, added, options.registry_dir)
    diverged = divergence(final.history, prepared.n_classes)
    unfit = diverged or chance_level(test_metrics["test_accuracy"], prepared.n_classes)
    decision = None
    if unfit is None:
        register = register_with_approval if options.approve else register_model
        with timings.step("register"):
            decision = register(
                str(final.model_path),
                {**test_metrics, "data_version": lineage["version"], "n_added": lineage["n_added"]},
                dataset=data.dataset,
                registry_dir=options.registry_dir,
                margin=options.margin,
                scores=scores,
            )
    groups = {"data": data.model_dump(), "train": params, "options": options.model_dump()}
    if search_params is not None:
        groups["search"] = search_params
    metrics = run_metrics(
        kind,
        test_metrics,
        final,
        params=groups,
        files=files,
        prepared=prepared,
        seed=options.seed,
        decision=decision,
        not_registered=unfit,
        search=search,
        lineage=lineage,
        eval_set=eval_set,
    )
    if parameters_used is not None:
        metrics["parameters_used"] = parameters_used
    if check is not None:
        metrics["data_check"] = check.to_dict()
    run_dir = run_dir_path(options.out_dir, flow_run.name)
    try:
        with staged_run_dir(run_dir) as staging:
            copy_model(final.model_path, staging)
            report_and_save(
                staging,
                metrics,
                evaluation,
                timings,
                data.dataset,
                trials=search["trials"] if search else None,
                decision_markdown=decision.to_markdown() if decision else not_registered(unfit),
                history=final.history,
                best_params=search["best"]["params"] if search else None,
                display_dir=str(run_dir),
                cache_dir=str(cache_dir),
            )
    except OutputError as exc:  # the registry already holds the model: the line says so
        if decision is None:
            raise
        done = f"{decision.challenger_version} {decision.verdict}"
        raise OutputError(f"{exc}; the model was registered before: {done}") from exc
    model_path = run_dir / "model.npz"
    if diverged is not None:
        trained = f"lr {params['lr']:g}, batch size {params['batch_size']}"
        trained += f", {prepared.n_train} images"
        if data.train_size:  # a tiny training set is a cause of its own
            trained += f" (--train-size {data.train_size})"
        raise DivergedError(
            f"the model diverged: {diverged}; not registered (report in {run_dir}); it trained "
            f"with {trained}: a lower --lr or a larger --batch-size usually helps"
        )
    if decision is None:
        logger.warning("not registered: the %s", unfit)
        return run_summary(run_dir, model_path, test_metrics, None, f"not registered: {unfit}")
    logger.info(
        "run directory %s: test accuracy %.4f, %s %s",
        run_dir,
        test_metrics["test_accuracy"],
        decision.challenger_version,
        decision.verdict,
    )
    return run_summary(run_dir, model_path, test_metrics, decision)
