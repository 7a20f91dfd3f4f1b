"""Helpers for the Prefect cache keys of the data tasks.

A cache key here is a hash of small inputs (names, checksums, settings, paths)
plus :func:`tasks.codeversion.code_version`. A cached result that points at files
is only served while those files exist: :func:`unless_stale` drops the cache for
one run (the task runs again and recreates them) when they have gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

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
