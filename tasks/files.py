"""Atomic writes of files and directories, shared by the pipeline's areas.

A file is written to a temporary file in the target's folder and moved into place
with :func:`os.replace` (:func:`nn.io.write_bytes_atomic`, the one implementation,
which the network's own model files use too); a directory is filled under a
temporary name beside the target and renamed to it. A reader sees either the
previous content or the complete new one, never a partial write, and a failed
write leaves no temporary behind. Directories keep ``mkdtemp``'s ``0o700``.
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
    """Write ``data`` as JSON to ``path`` atomically.

    Raises
    ------
    ValueError
        If ``data`` holds a NaN or an infinity (not valid JSON) and ``allow_nan`` is
        false; nothing is written.
    OSError
        If the file cannot be written; nothing is left behind.
    """
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
    merge: bool = False,
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
    merge:
        When ``target`` already exists, move each file of the new directory into it with
        :func:`os.replace` (each file appears whole; files of ``target`` that the new
        directory does not hold are kept) instead of asking ``replace_existing``.

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
        if merge and target.is_dir():
            for item in sorted(tmp.iterdir()):
                os.replace(item, target / item.name)
            return
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
