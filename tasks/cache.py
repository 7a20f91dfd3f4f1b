"""Cache keys of the pipeline's tasks: a version of the code, hashes of small inputs.

Prefect's ``TASK_SOURCE`` cache policy hashes only the text of the task function:
a change in a helper it calls would still hit the old cache. :func:`code_version`
hashes every Python source file of the packages instead, so any change of the
code invalidates the caches keyed on it. A cache key is a hash of small inputs
(names, checksums, settings, paths) plus that version. A cached result that points
at files is only served while those files exist: :func:`unless_stale` drops the
cache for one run (the task runs again and recreates them) when they have gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PACKAGES: tuple[str, ...] = ("nn", "tasks", "flows")
#: The folder holding the packages (the checkout, or site-packages when installed).
SOURCE_ROOT: Path = Path(__file__).resolve().parent.parent


def code_version(root: Path | None = None, packages: Sequence[str] = PACKAGES) -> str:
    """Return a hex digest of the ``.py`` files of ``packages`` under ``root``.

    Parameters
    ----------
    root:
        Folder holding the packages; default :data:`SOURCE_ROOT`.
    packages:
        Package folder names to hash (missing ones are skipped).

    Returns
    -------
    str
        24 hex characters; changes whenever a file is added, removed, renamed or edited.
    """
    root = SOURCE_ROOT if root is None else Path(root)
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


logger = logging.getLogger(__name__)


def hash_key(**parts: Any) -> str:
    """Return a SHA-256 hex digest of ``parts`` (JSON, sorted keys, ``str`` for paths)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def unless_stale(context: Any, key: str, valid: Callable[[Any], bool]) -> str | None:
    """Return ``key``, or None when a result is cached under it but is no longer ``valid``.

    Parameters
    ----------
    context:
        Prefect's ``TaskRunContext`` (its ``result_store`` holds the cached results).
    key:
        The cache key computed from the inputs.
    valid:
        Tells whether a cached result can still be used (e.g. its files exist).

    Returns
    -------
    str or None
        None makes Prefect run the task without reading or writing the cache; since the
        task writes its files at the same deterministic places, the old record becomes
        valid again afterwards.
    """
    store = getattr(context, "result_store", None)
    try:
        if store is None or not store.exists(key):
            return key
        record = store.read(key)
        if valid(record.result):
            return key
    except Exception as exc:  # unreadable record: run again rather than fail
        logger.warning("cached result %s unreadable (%s); running again", key, exc)
        return None
    logger.warning("cached result %s refers to files that are gone; running again", key)
    return None
