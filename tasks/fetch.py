"""Prefect task: fetch and verify the four IDX files of a dataset.

The downloads are the cache (:mod:`tasks.cache`): files already in the cache folder are
used, verified again unless the folder records them verified and unchanged since
(:mod:`tasks.data.verify`), and the task then ends ``Cached``.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from tasks.cache import reused
from tasks.data.datasets import DatasetFiles
from tasks.data.sources import fetch_files
from tasks.errors import FetchError

__all__ = ["DatasetFiles", "fetch"]


def _retry_on_network_error(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry only when some source failed transiently (timeout, reset, HTTP 5xx).

    Not on corrupt files, HTTP 403/404 or unreachable hosts (name not resolved,
    connection refused): without a network the run fails at once.
    """
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, FetchError) and exc.transient


@task(
    name="fetch",
    retries=2,
    retry_delay_seconds=[5, 20],
    retry_condition_fn=_retry_on_network_error,
    cache_policy=NO_CACHE,
)
def fetch(
    dataset: str = "mnist",
    data_dir: str | None = None,
    mirror: str | None = None,
    cache_dir: str | None = None,
) -> DatasetFiles:
    """Find, download if needed, and verify the four IDX files of a dataset."""
    logger = get_run_logger()
    files = fetch_files(
        dataset, data_dir=data_dir, mirror=mirror, cache_dir=cache_dir, logger=logger
    )
    logger.info(
        "dataset %s: %d classes, images %dx%d, fingerprint %s",
        files.name, files.n_classes, *files.image_shape, files.fingerprint[:12],
    )  # fmt: skip
    if set(files.sources.values()) == {"cache"}:
        return reused(files, files.path(next(iter(files.sources))).parent)
    return files
