"""Atomic file writes: the one implementation, for model files, run outputs and the registry.

A file is written to a temporary file in the target's folder and moved into place with
:func:`os.replace`. A reader sees either the previous content or the complete new one, never a
partial write, and a failed write leaves no temporary behind.

Files get the mode ``open()`` would give them (``0o666`` less the umask) rather than
``mkstemp``'s private ``0o600``: model files, run outputs and registry entries are meant
to be read.

It lives in ``nn`` because ``nn.io`` needs it and ``nn`` imports only numpy and the
standard library; ``tasks`` imports it from here. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]


def file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _replace_from_temp(path: Path, fill: Callable[[str, int], None]) -> None:
    """Create a temp file beside ``path``, let ``fill(tmp_path, fd)`` write it, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        fill(tmp, fd)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path:
        The destination; its folder must exist.
    data:
        The whole content.
    fsync:
        Flush the content to disk before the rename (survives a power cut).

    Raises
    ------
    OSError
        If the file cannot be written; nothing is left behind.
    """

    def fill(_tmp: str, fd: int) -> None:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())

    _replace_from_temp(Path(path), fill)


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
    """Copy the file ``src`` to ``dst`` atomically.

    Raises
    ------
    OSError
        If ``src`` cannot be read or ``dst`` written; nothing is left behind.
    """

    def fill(tmp: str, fd: int) -> None:
        os.close(fd)
        shutil.copyfile(src, tmp)

    _replace_from_temp(Path(dst), fill)
