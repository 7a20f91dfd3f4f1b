"""Cache keys of the pipeline's tasks: a version of the code, hashes of small inputs.

Prefect's ``TASK_SOURCE`` cache policy hashes only the text of the task function:
a change in a helper it calls would still hit the old cache. :func:`code_version`
hashes every Python source file of the packages instead, so any change of the
code invalidates the caches keyed on it. :class:`InputsAndCode` is the tasks' cache
policy: its key hashes a few small inputs (names, checksums, settings, paths) plus
that version, and a cached result that points at files is only served while those
files exist (otherwise the task runs again and recreates them).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect.cache_policies import CachePolicy

if TYPE_CHECKING:
    from prefect.context import TaskRunContext
    from prefect.results import ResultStore

PACKAGES: tuple[str, ...] = ("nn", "tasks", "flows")
#: The folder holding the packages (the checkout, or site-packages when installed).
SOURCE_ROOT: Path = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)


def code_version(root: Path | None = None, packages: Sequence[str] = PACKAGES) -> str:
    """Return a hex digest of the ``.py`` files of ``packages`` under ``root``.

    Parameters
    ----------
    root:
        Folder holding the packages. By default :data:`SOURCE_ROOT`, hashed once per
        process (the code a process runs is the code it imported;
        :func:`forget_code_version` makes the next call hash the files again). A
        given ``root`` is hashed at every call.
    packages:
        Package folder names to hash (missing ones are skipped).

    Returns
    -------
    str
        24 hex characters; changes whenever a file is added, removed, renamed or edited.
    """
    if root is None:
        return _hash_once(SOURCE_ROOT, tuple(packages))
    return _hash_sources(Path(root), tuple(packages))


def forget_code_version() -> None:
    """Forget the default :func:`code_version`, for tests that edit the sources it hashes."""
    _hash_once.cache_clear()


def _hash_sources(root: Path, packages: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


_hash_once = functools.cache(_hash_sources)


def hash_key(**parts: Any) -> str:
    """Return a SHA-256 hex digest of ``parts`` (JSON, sorted keys, ``str`` for paths)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _always(result: Any) -> bool:
    return True


@dataclass(kw_only=True)
class InputsAndCode(CachePolicy):
    """Cache on a task's small inputs plus :func:`code_version`; files gone mean a miss.

    Attributes
    ----------
    inputs:
        Maps the task's parameters to the small, JSON-able values its result depends
        on (names, paths, checksums, settings); None runs the task uncached (e.g. it
        reports an invalid parameter itself).
    files_exist:
        Tells whether a cached result can still be served (its files are on disk).
    """

    inputs: Callable[[dict[str, Any]], dict[str, Any] | None]
    files_exist: Callable[[Any], bool] = _always

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """``<task name>-<hash of the small inputs and the code version>``, or None."""
        parts = self.inputs(inputs)
        if parts is None:
            return None
        key = f"{task_ctx.task.name}-{hash_key(code=code_version(), inputs=parts)}"
        return _unless_stale(task_ctx.result_store, key, self.files_exist)


def _unless_stale(store: ResultStore, key: str, valid: Callable[[Any], bool]) -> str | None:
    """Return ``key``, or None when a result is cached under it but is no longer ``valid``.

    Why this reads the record: in Prefect 3 a cache policy only computes a key, and
    the task's transaction serves any unexpired record stored under it
    (``Transaction.begin`` asks ``ResultStore.exists``). Neither the policy, the
    record nor the store offers a check of the cached value, and the store cannot
    delete a record; ``refresh_cache`` is fixed per task, not decided per run. So the
    policy reads the record from the run's store (the one the transaction uses) and
    returns None: Prefect runs the task without reading or writing the cache. Since
    the task writes its files at the same deterministic places, the old record
    becomes valid again afterwards.

    Parameters
    ----------
    store:
        The task run's ``ResultStore`` (``TaskRunContext.result_store``).
    key:
        The cache key computed from the inputs.
    valid:
        Tells whether a cached result can still be used (e.g. its files exist).
    """
    try:
        if not store.exists(key):
            return key
        if valid(store.read(key).result):
            return key
    except Exception as exc:  # unreadable record: run again rather than fail
        logger.warning("cached result %s unreadable (%s); running again", key, exc)
        return None
    logger.warning("cached result %s refers to files gone or changed; running again", key)
    return None
