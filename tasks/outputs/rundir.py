"""The run directory of a flow: its location, the copied model, ``metrics.json``, timings.

The directory is checked before any work (:func:`check_out_dir`) and assembled in a staging
folder that becomes it only once every output is written (:func:`staged_run_dir`), so a
failed run leaves no partial one.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tasks.errors import OutputError
from tasks.files import copy_atomic, write_bytes_atomic, write_json_atomic


def run_dir_path(out_dir: str | None, run_name: str | None = None) -> Path:
    """The run directory: ``out_dir`` if given, else ``runs/<UTC timestamp>-<run name>``."""
    if out_dir:
        return Path(out_dir).expanduser()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("runs") / f"{stamp}-{run_name or 'local'}"


def check_out_dir(out_dir: str | None) -> Path:
    """Check, before any work, that the run directory can be written; return where it will be.

    ``out_dir`` (default: the working directory) must be a writable directory or have one
    as its closest existing parent; nothing is created. Raises :class:`OutputError` naming
    the path and why.
    """
    target = run_dir_path(out_dir).absolute() if out_dir else Path.cwd() / "runs"
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = "--out " if out_dir else ""
    if not existing.is_dir():
        raise OutputError(
            f"{where}{target}: cannot create the run directory ({existing} is not a folder)"
        )
    try:  # a real write: permissions, read-only mounts, and also root
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise OutputError(
            f"{where}{target}: cannot write the run directory ({existing}: {exc.strerror or exc})"
        ) from exc
    return target


STAGING = "staging-"
RECORDS = ("report.md", "metrics.json")
"""What a run folder states about the run: moved into place last."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders in ``folder`` whose writing process is gone; return them."""
    removed = []
    for path in sorted(folder.glob(f".*.{STAGING}*.tmp")):
        pid = path.name.rsplit(f".{STAGING}", 1)[1].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def publish(staging: Path, target: Path) -> None:
    """Make the folder ``staging`` the run directory ``target``.

    A new ``target`` is one rename. An existing one loses its :data:`RECORDS` first and gets
    them last, so a kill in between leaves a folder that states nothing rather than the
    earlier run's outcome beside this run's model; other files are kept.
    """
    if not target.exists():
        os.rename(staging, target)
        return
    for name in RECORDS:
        (target / name).unlink(missing_ok=True)
    for item in sorted(staging.iterdir(), key=lambda p: (p.name in RECORDS, p.name)):
        os.replace(item, target / item.name)


@contextlib.contextmanager
def staged_run_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to write a run's outputs into; publish it at the end.

    When the block ends normally the folder becomes ``target`` (:func:`publish`); when it
    raises, the folder is removed and ``target`` is untouched. Staging folders of dead
    processes beside ``target`` are removed. Raises :class:`OutputError` naming the path
    if the folder cannot be created or moved into place.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(target.parent)
        prefix = f".{target.name}.{STAGING}{os.getpid()}."
        staging = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
        try:
            yield staging
            publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        where = exc.filename or target
        raise OutputError(f"cannot write run directory {where}: {exc.strerror or exc}") from exc


def copy_model(model_path: str | Path, run_dir: Path) -> Path:
    """Copy a saved model (``.npz`` and its ``.json``) to ``run_dir/model.npz``; return it
    (an :class:`OutputError` if a file is missing or cannot be copied)."""
    src = Path(model_path)
    dst = run_dir / "model.npz"
    try:
        copy_atomic(src, dst)
        copy_atomic(src.with_suffix(".json"), dst.with_suffix(".json"))
    except OSError as exc:
        raise OutputError(f"cannot copy model {src} to {run_dir}: {exc}") from exc
    return dst


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically; an :class:`OutputError` if it cannot."""
    try:
        write_json_atomic(path, data, sort_keys=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc


def write_file(path: Path, data: bytes, shown: Path | None = None) -> None:
    """Write ``data`` to ``path`` atomically; an OSError becomes an OutputError naming the
    file in ``shown`` (the run directory, when ``path`` is in its staging folder)."""
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        where = (shown or path.parent) / path.name
        raise OutputError(f"cannot write {where}: {exc.strerror or exc}") from exc


def versions() -> dict[str, str]:
    """Versions of python, numpy, prefect and this package."""
    import numpy

    try:
        package = metadata.version("mnist-flow")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        package = "unknown"
    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "prefect": metadata.version("prefect"),
        "package": package,
    }


class Timings:
    """Wall time of each step, in seconds, in the order the steps ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as step ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)

    def to_dict(self) -> dict[str, float]:
        """The steps plus ``total`` (flow wall time so far)."""
        return {**self.seconds, "total": round(time.perf_counter() - self._start, 3)}
