"""The report step: write ``report.md`` and its plots (:mod:`tasks.outputs.report`), publish
them as the artifact ``mnist-report`` with every plot embedded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.logs import run_logger
from tasks.outputs.report import PLOTS, outcome, percent, write_report_files

REPORT_ARTIFACT_KEY = "mnist-report"
PARAMETERS_ARTIFACT_KEY = "mnist-parameters"


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(
    run_dir: str, metrics: dict, *, cache_dir: str | None = None, **extras: Any
) -> str:
    """Write the report into ``run_dir``, publish it; return the path of ``report.md``.

    ``extras`` are those of :func:`tasks.outputs.report.write_report_files`; with a
    ``cache_dir`` the plots are cached in ``<cache_dir>/plots``.
    """
    logger = run_logger(__name__)
    if cache_dir is not None:
        extras.update(plot_cache=Path(cache_dir) / "plots")
    written = write_report_files(run_dir, metrics, **extras)
    for name in written.not_embedded:
        logger.warning(
            "plot %s is too large to embed in the artifact; see %s", name, PLOTS[name][0]
        )
    accuracy = percent(metrics.get("test_accuracy"))
    shown = Path(extras.get("display_dir") or run_dir)
    said = outcome(metrics)
    create_markdown_artifact(
        markdown=written.ui_markdown,
        key=REPORT_ARTIFACT_KEY,
        description=f"{said + ' ' if said else ''}Test accuracy {accuracy}; run directory {shown}",
    )
    used = metrics.get("parameters_used")
    if used:
        from_deployment = sum(row["source"] == "deployment" for row in used)
        create_table_artifact(
            table=[{k: str(v) if isinstance(v, list) else v for k, v in r.items()} for r in used],
            key=PARAMETERS_ARTIFACT_KEY,
            description=f"Parameters used by this run: {len(used)} values, "
            f"{from_deployment} of them from the deployment",
        )
    logger.info(
        "report written to %s (%d plots, test accuracy %s)",
        shown / written.path.name,
        len(written.plots),
        accuracy,
    )
    return str(shown / written.path.name)
