"""The pipeline's cache: content-addressed files, each owned by the step that makes them.

Prefect caches nothing (every task runs with ``NO_CACHE``): the results are large files its
result store would pickle. A cached step names its result by :func:`content_key` of its
inputs and its area's hand-bumped ``CODE_VERSION``, checks the file it finds and reuses it
or makes it again; a reuse ends the task in a Completed state named ``Cached``
(:func:`reused`). :func:`summarize` and :func:`prune` are ``mnist-flow cache``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.data.datasets import DATASETS

#: The cache's top-level folders that :func:`summarize` lists, with what they hold.
KINDS: dict[str, str] = {
    "downloads": "verified downloads",
    "prepared": "prepared arrays (one folder per dataset content) and their splits",
    "trials": "finished search trials",
    "checkpoints": "search checkpoints kept with --keep-checkpoints",
    "models": "final models",
    "plots": "the report's plots",
    "other": "left by an older version",
}


def content_key(**parts: Any) -> str:
    """24 hex digits of the SHA-256 of ``parts`` as JSON (sorted keys, ``str`` for paths)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def reused(value: Any, where: Path | str) -> Any:
    """A Completed state named ``Cached`` holding ``value``, found at ``where``."""
    from prefect.states import Completed

    with contextlib.suppress(OSError):  # `mnist-flow cache --older-than` counts from here
        os.utime(where)
    return Completed(data=value, name="Cached", message=f"reused {where}")


@dataclass(frozen=True)
class Entry:
    """One removable unit of the cache: its files (a folder counts with its content)."""

    kind: str
    paths: tuple[Path, ...]
    bytes: int
    mtime: float

    def remove(self) -> None:
        """Delete the entry's files."""
        for path in self.paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _entry(kind: str, paths: list[Path]) -> Entry:
    size = sum(_size(p) for p in paths)
    return Entry(kind, tuple(sorted(paths)), size, max(p.stat().st_mtime for p in paths))


def entries(root: Path) -> list[Entry]:
    """Every entry of the cache at ``root``, most recently written or reused first; a
    folder of an unknown kind (left by an older version) is one entry of kind ``other``."""
    found: list[Entry] = []
    tops = sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []
    for top in tops:
        if top.name == "idx" and top.is_dir():
            found += [_entry("downloads", [p]) for p in top.iterdir() if p.is_dir()]
        elif top.name in DATASETS:
            found.append(_entry("downloads", [top]))
        elif top.name in KINDS and top.is_dir():
            groups: dict[str, list[Path]] = {}
            for path in top.iterdir():
                if not path.name.startswith("."):  # a write in progress
                    stem = path.name.split(".")[0]
                    stem = stem.rsplit("-e", 1)[0] if top.name == "checkpoints" else stem
                    groups.setdefault(stem, []).append(path)
            found += [_entry(top.name, paths) for paths in groups.values()]
        else:
            found.append(_entry("other", [top]))
    return sorted(found, key=lambda e: e.mtime, reverse=True)


def summarize(root: Path) -> list[dict[str, Any]]:
    """One row per kind of entry: ``kind``, ``entries``, ``bytes``, ``what``."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries(root):
        row = rows.setdefault(
            entry.kind, {"kind": entry.kind, "entries": 0, "bytes": 0, "what": KINDS[entry.kind]}
        )
        row.update(entries=row["entries"] + 1, bytes=row["bytes"] + entry.bytes)
    return [rows[kind] for kind in KINDS if kind in rows]


def prune(root: Path, *, older_than: float | None = None, keep: int | None = None) -> list[Entry]:
    """Remove the entries neither written nor reused for ``older_than`` days, and all but
    the ``keep`` most recent of each kind; return the entries removed."""
    cutoff = None if older_than is None else time.time() - older_than * 86400
    counts: dict[str, int] = {}
    removed = []
    for entry in entries(root):
        counts[entry.kind] = counts.get(entry.kind, 0) + 1
        if (cutoff is not None and entry.mtime < cutoff) or (
            keep is not None and counts[entry.kind] > keep
        ):
            entry.remove()
            removed.append(entry)
    return removed


def format_summary(root: Path) -> str:
    """The table ``mnist-flow cache`` prints: kind, entries, size, what; then the total."""
    rows = summarize(root)
    if not rows:
        return f"cache {root}: empty"
    lines = [f"cache {root}:", f"{'kind':<12} {'entries':>7} {'MB':>9}  what"]
    for row in rows:
        mb = row["bytes"] / 1e6
        lines.append(f"{row['kind']:<12} {row['entries']:>7} {mb:>9.1f}  {row['what']}")
    total = sum(row["bytes"] for row in rows) / 1e6
    lines.append(f"{'total':<12} {sum(r['entries'] for r in rows):>7} {total:>9.1f}")
    return "\n".join(lines)
