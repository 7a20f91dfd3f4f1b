"""A full disk, told in one line: the file, and the option that puts it on another disk.

The ``OSError`` is found in the chain of causes (often wrapped in a project error that
names the file); a run's hidden staging folder is named as the run folder it stands for.
"""

from __future__ import annotations

import argparse
import errno
import re
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def full_disk_error(exc: BaseException | None) -> OSError | None:
    """The error of a full disk that ``exc`` is or comes from, if any (numpy's ``Not enough
    free space to write N bytes`` carries no error number)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and (exc.errno in DISK_FULL or "free space" in str(exc)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _written_folders(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The folders the command writes: (option, spellings of the folder)."""
    from tasks.data.datasets import resolve_cache_dir
    from tasks.data.versions import resolve_store
    from tasks.registry.files import default_registry_root

    defaults = {
        "registry_dir": ("--registry", default_registry_root),
        "cache_dir": ("--cache-dir", lambda: resolve_cache_dir(None)),
        "data_store": ("--data-store", lambda: resolve_store(None)),
        "out_dir": ("--out", lambda: Path("runs")),
        "csv": ("--csv", None),
    }
    found = []
    for dest, (option, default) in defaults.items():
        value = getattr(args, dest, None)
        if value or (hasattr(args, dest) and default is not None):
            path = Path(value).expanduser() if value else default()
            found.append((option, [str(path), str(path.absolute())]))
    return found


def disk_full_line(exc: BaseException, args: argparse.Namespace) -> str | None:
    """One line for a full disk: the file (a run's staging folder named as the run folder)
    and the option that puts what was written on another disk."""
    full = full_disk_error(exc)
    if full is None:
        return None
    text = str(exc) if exc is not full else f"{full.strerror or full}"
    if full.filename and str(full.filename) not in text:
        text = f"{full.filename}: {text}"
    text = re.sub(
        r"(^|/)\.([^/\s]+?)(?:\.staging-\d+)?\.[a-z0-9_]{8}\.tmp(?=[/:;,)\s]|$)", r"\1\2", text
    )
    # the folder named last is the one written to ("cannot copy model SRC to DST")
    folders = _written_folders(args)
    named = [(max(text.rfind(s) for s in spellings), len(spellings[1]), option)
             for option, spellings in folders]  # fmt: skip
    at, _, option = max(named, default=(-1, 0, ""))
    if at < 0:  # no file named: every folder the command writes is a suspect
        option = ", ".join(option for option, _ in folders)
    return f"{text}; the disk is full: free some space or choose another folder ({option})"
