"""Atomic writes of files and directories: a reader sees the previous content or the complete
new one, and a failed write leaves no temporary behind.

Files go through :func:`nn.io.write_bytes_atomic` (the one implementation); a directory is
filled under a temporary name beside the target and renamed to it (keeping ``0o700``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nn.io import write_bytes_atomic

__all__ = [
    "copy_atomic",
    "write_bytes_atomic",
    "write_directory_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

PathLike = str | os.PathLike[str]


def write_text_atomic(path: PathLike, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(
    path: PathLike,
    data: Any,
    *,
    indent: int = 2,
    sort_keys: bool = True,
    allow_nan: bool = False,
) -> None:
    """Write ``data`` as JSON to ``path`` atomically; a :class:`ValueError` for a NaN or an
    infinity unless ``allow_nan``, an :class:`OSError` if it cannot (nothing is left)."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=allow_nan) + "\n"
    write_text_atomic(path, text)


def copy_atomic(src: PathLike, dst: PathLike) -> None:
    """Copy the file ``src`` to ``dst`` atomically; :class:`OSError` leaves nothing behind."""
    write_bytes_atomic(dst, Path(src).read_bytes())


@contextlib.contextmanager
def write_directory_atomic(
    target: PathLike,
    *,
    prefix: str | None = None,
    replace_existing: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield a new empty directory beside ``target``; rename it to ``target`` when the block ends.

    Parameters
    ----------
    target:
        The directory to create; its parent must exist.
    prefix:
        Name prefix of the temporary directory (default ``".<target name>."``); a caller
        that cleans up after crashed writers globs for it.
    replace_existing:
        What to do when a non-empty ``target`` already exists (another writer got there
        first): ``None`` raises the rename's :class:`OSError`; otherwise
        ``replace_existing(target)`` is asked, and True removes ``target`` and puts the new
        directory in its place, False keeps ``target`` and discards the new directory.

    Raises
    ------
    OSError
        If the temporary directory cannot be created or renamed (see ``replace_existing``).
        Whatever the ``with`` block raises propagates, with ``target`` untouched. The
        temporary directory never outlives the call.
    """
    target = Path(target)
    name = prefix if prefix is not None else f".{target.name}."
    tmp = Path(tempfile.mkdtemp(prefix=name, suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError:
            if replace_existing is None or not target.exists():
                raise
            if replace_existing(target):
                shutil.rmtree(target)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
