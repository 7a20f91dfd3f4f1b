"""The run directory of a flow: its location, the copied model, ``metrics.json``, timings.

Plain helpers used by the three flows; the only Prefect import is the runtime
lookup of the flow-run name for the default directory name.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from nn.atomic import copy_atomic, write_json_atomic
from tasks.errors import OutputError


def make_run_dir(out_dir: str | None, run_name: str | None = None) -> Path:
    """Create and return the run directory.

    ``out_dir`` if given (created if missing; files in it are replaced), else
    ``runs/<UTC timestamp>-<flow run name>`` under the working directory.

    Raises
    ------
    OutputError
        If the directory cannot be created.
    """
    if out_dir:
        path = Path(out_dir).expanduser()
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = Path("runs") / f"{stamp}-{run_name or 'local'}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create run directory {path}: {exc.strerror}") from exc
    return path


def copy_model(model_path: str | Path, run_dir: Path) -> Path:
    """Copy a saved model (``.npz`` and its ``.json``) to ``run_dir/model.npz``; return it.

    Raises
    ------
    OutputError
        If a file is missing or cannot be copied.
    """
    src = Path(model_path)
    dst = run_dir / "model.npz"
    try:
        copy_atomic(src, dst)
        copy_atomic(src.with_suffix(".json"), dst.with_suffix(".json"))
    except OSError as exc:
        raise OutputError(f"cannot copy model {src} to {run_dir}: {exc}") from exc
    return dst


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temp file + ``os.replace``).

    Raises
    ------
    OutputError
        If the file cannot be written (nothing is left behind).
    """
    try:
        write_json_atomic(path, data, sort_keys=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc


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
