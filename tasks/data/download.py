"""Stream a URL (``http(s)://`` or ``file://``) to a temporary file, with retries.

The download goes to a hidden ``.part`` file in the destination folder, which the caller
verifies and renames into place, so no reader sees a half-written file. Transient errors
(timeouts, resets, truncated bodies, HTTP 5xx/408/429) are retried with exponential
backoff; others fail at once, an unreachable host marked ``unreachable`` so the caller
skips its other files. Pure: standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

USER_AGENT = "mnist-flow/0.1"
_CHUNK = 1 << 20
_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}

Logger = logging.Logger | logging.LoggerAdapter[Any]


class DownloadFailed(Exception):
    """A download failed.

    ``transient`` tells whether a later retry might succeed; ``unreachable`` that the
    host itself could not be reached (its other files will fail the same way).
    """

    def __init__(self, message: str, *, transient: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED}


def _is_unreachable(error: object) -> bool:
    """Whether ``error`` says the host cannot be reached at all (name not resolved, connection
    refused, no route): that does not recover within a few seconds of backoff."""
    return isinstance(error, socket.gaierror) or (
        isinstance(error, OSError) and error.errno in _UNREACHABLE_ERRNOS
    )


def _is_transient(error: object) -> bool:
    """Whether a network error may go away by itself: timeouts and dropped connections."""
    if _is_unreachable(error):
        return False
    return isinstance(error, TimeoutError | ConnectionError | http.client.HTTPException)


def download(
    url: str,
    dest_dir: Path,
    *,
    logger: Logger,
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    progress_every: float = 5.0,
) -> Path:
    """Download ``url`` (``http(s)://`` or ``file://``) into a new temporary file in the
    existing folder ``dest_dir`` (the cache, so the final rename is atomic); return its path.

    ``timeout``: seconds without progress before an attempt gives up; ``retries``: extra
    attempts after a transient failure, the first after ``backoff`` seconds, doubled each
    time (waiting with ``sleep``); ``progress_every``: seconds between progress lines.

    Raises DownloadFailed when every attempt failed (the message gives the last reason).
    """
    for attempt in range(retries + 1):
        try:
            return _download_once(url, dest_dir, logger, timeout, progress_every)
        except DownloadFailed as exc:
            if not exc.transient or attempt == retries:
                raise
            delay = backoff * 2**attempt
            logger.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                url, exc, delay, attempt + 2, retries + 1,
            )  # fmt: skip
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _download_once(
    url: str, dest_dir: Path, logger: Logger, timeout: float, progress_every: float
) -> Path:
    """One attempt: stream ``url`` to a temporary file, deleted on any failure."""
    name = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                _copy(response, out, url, logger, progress_every)
        return tmp
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, DownloadFailed):
            raise
        if isinstance(exc, urllib.error.HTTPError):
            raise DownloadFailed(
                f"HTTP {exc.code} {exc.reason}", transient=exc.code in _TRANSIENT_HTTP
            ) from None
        if isinstance(exc, urllib.error.URLError):
            reason = exc.reason
            if _is_unreachable(reason):
                text = getattr(reason, "strerror", None) or str(reason)  # "Name or service ..."
                raise DownloadFailed(
                    f"cannot open: {text}", transient=False, unreachable=True
                ) from None
            transient = _is_transient(reason)
            raise DownloadFailed(f"cannot open: {reason}", transient=transient) from None
        if isinstance(exc, TimeoutError | ConnectionError | http.client.HTTPException):
            raise DownloadFailed(
                f"{type(exc).__name__}: {exc}", transient=_is_transient(exc)
            ) from None
        if isinstance(exc, ValueError):  # unknown URL scheme
            raise DownloadFailed(f"bad URL: {exc}", transient=False) from None
        if isinstance(exc, OSError):
            raise DownloadFailed(f"{exc.strerror or exc}", transient=False) from None
        raise


def _copy(response: Any, out: Any, url: str, logger: Logger, progress_every: float) -> None:
    """Copy the response body to ``out``; fail if it is shorter than its Content-Length."""
    total: int | None = None
    with contextlib.suppress(TypeError, ValueError):
        total = int(response.headers.get("Content-Length"))
    received = 0
    start = last = time.monotonic()
    while chunk := response.read(_CHUNK):
        out.write(chunk)
        received += len(chunk)
        now = time.monotonic()
        if now - last >= progress_every:
            last = now
            share = f" of {total / 1e6:.1f} MB ({100 * received / total:.0f}%)" if total else ""
            logger.info("%s: %.1f MB%s", url, received / 1e6, share)
    if total is not None and received != total:
        raise DownloadFailed(
            f"truncated download: received {received} of {total} bytes", transient=True
        )
    elapsed = time.monotonic() - start
    logger.info("downloaded %s: %.1f MB in %.1f s", url, received / 1e6, elapsed)
