"""An exclusive inter-process file lock (pure, standard library only).

The lock is ``fcntl.flock`` on a lock file, so it works on Linux and macOS (local file
systems; not reliably on NFS). On platforms without ``fcntl`` (Windows) taking the lock
raises :class:`LockError` rather than silently running unlocked. The kernel releases a
``flock`` when its holder exits, so a crashed process never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nn.errors import MnistFlowError

try:  # pragma: no branch - platform dependent
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class LockError(MnistFlowError):
    """A lock file could not be taken (timeout, permissions or unsupported platform)."""


@contextlib.contextmanager
def exclusive_lock(
    path: Path, *, timeout: float = 60.0, poll_interval: float = 0.02
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    path:
        The lock file; its parent directory must exist.
    timeout:
        Seconds to wait for another holder before giving up (>= 0).
    poll_interval:
        Seconds between attempts while waiting.

    Raises
    ------
    LockError
        If ``fcntl`` is unavailable, the file cannot be opened, or ``timeout`` elapses.

    Notes
    -----
    Not re-entrant: taking the same lock again in the same process through a second
    ``with`` block waits for itself and times out.
    """
    if fcntl is None:  # pragma: no cover - Windows
        raise LockError(f"cannot lock {path}: file locking needs fcntl (Linux or macOS)")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LockError(f"cannot open lock file {path}: {exc.strerror}") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"timed out after {timeout:g} s waiting for lock {path}; "
                        "another process holds it"
                    ) from None
                time.sleep(poll_interval)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
