"""A version of the project's code for cache keys.

Prefect's ``TASK_SOURCE`` cache policy hashes only the text of the task function:
a change in a helper it calls would still hit the old cache. :func:`code_version`
hashes every Python source file of the packages instead, so any change of the
code invalidates the caches keyed on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

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
