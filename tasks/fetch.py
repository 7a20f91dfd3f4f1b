"""Prefect task: fetch and verify the four IDX files of a dataset."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from tasks.cache import InputsAndCode
from tasks.data.datasets import DATASETS, STEMS, DatasetFiles, resolve_cache_dir
from tasks.data.sources import fetch_files
from tasks.errors import FetchError

__all__ = ["DatasetFiles", "fetch", "folder_signature"]


def _cache_inputs(parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset, its published checksums and the sources (the cache key's inputs).

    The checksums of an ``idx`` folder are unknown before reading it: the key holds the
    folder's path and the size and modification time of its IDX files (so replacing a
    file fetches again), and the returned :class:`DatasetFiles` carries the checksums.
    """
    spec = DATASETS.get(parameters.get("dataset", "mnist"))
    if spec is None:
        return None  # the task itself reports the unknown name
    data_dir = parameters.get("data_dir")
    return dict(
        dataset=spec.name,
        checksums=[(f.filename, f.sha256, f.md5) for f in spec.files],
        data_dir=None if data_dir is None else Path(data_dir).expanduser().absolute(),
        data_dir_files=None if data_dir is None else folder_signature(Path(data_dir).expanduser()),
        mirror=parameters.get("mirror"),
        cache_dir=resolve_cache_dir(parameters.get("cache_dir")),
    )


def folder_signature(folder: Path) -> list[tuple[str, int, int]] | str:
    """Name, size and modification time (ns) of the IDX files of ``folder``."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    signature = []
    for path in entries:
        if any(stem in path.name for stems in STEMS.values() for stem in stems):
            with contextlib.suppress(OSError):
                stat = path.stat()
                signature.append((path.name, stat.st_size, stat.st_mtime_ns))
    return signature


def _files_exist(files: DatasetFiles) -> bool:
    return all(path.is_file() for path in files.paths.values())


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
    cache_policy=InputsAndCode(inputs=_cache_inputs, files_exist=_files_exist),
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
    return files
