"""A migrated Prefect database for the Prefect homes the tests' commands and servers start in.

A Prefect server on a new database first runs every migration: about half of its start's CPU
time (7 s against 14 s for the test harness's server). The tests' homes, and the harness's
database (``tests/conftest.py``), instead get a copy of one database migrated once a session,
as a user's home is from the second command on. Tests of the very first run on a new
machine ask for an empty home (``seeded=False``) and say so.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

_folder: Path | None = None
"""Where the session keeps the template: set by ``tests/conftest.py`` (shared by the workers)."""


def set_folder(folder: Path) -> None:
    global _folder
    _folder = folder


def template() -> Path:
    """The session's migrated database, made by the first process that needs it."""
    if _folder is None:
        raise RuntimeError("tests.prefect_db.set_folder was not called (tests/conftest.py)")
    _folder.mkdir(parents=True, exist_ok=True)
    database = _folder / "prefect.db"
    with open(_folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another xdist worker may be making it
        if not database.is_file():
            build = _folder / "build"
            shutil.rmtree(build, ignore_errors=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env.update(PREFECT_HOME=str(build), PREFECT_SERVER_ANALYTICS_ENABLED="false")
            proc = subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            if proc.returncode != 0 or not (build / "prefect.db").is_file():
                raise RuntimeError(f"could not migrate a Prefect database:\n{proc.stderr[-3000:]}")
            os.replace(build / "prefect.db", database)
    return database


def prefect_home(home: Path, seeded: bool = True) -> Path:
    """Create the Prefect home ``home``, with a migrated database unless not ``seeded``."""
    home.mkdir(parents=True, exist_ok=True)
    if seeded:
        shutil.copyfile(template(), home / "prefect.db")
    return home
