"""Where the trials of a search run: checks before any work, and what the trials ran on.

A search on ``backend="dask"`` fails early and in one line rather than after the data
was fetched or after minutes of silence (:func:`check_backend`, :func:`probe_scheduler`,
:func:`wait_for_workers`). :class:`Placement` records where the trials ran.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from nn.config import SettingError
from nn.errors import ConfigError
from tasks.errors import SearchError

__all__ = [
    "DEFAULT_PORT",
    "PROBE_SECONDS",
    "SCHEMES",
    "Placement",
    "check_backend",
    "probe_scheduler",
    "split_address",
    "wait_for_workers",
]

SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
"""The address schemes of a Dask scheduler (a bare ``HOST:PORT`` is ``tcp``)."""
DEFAULT_PORT = 8786
"""The scheduler's port when the address gives none (Dask's default)."""
PROBE_SECONDS = 10.0
"""How long :func:`probe_scheduler` waits to connect, then for the scheduler's first bytes."""
WAIT_LOG_SECONDS = 5.0
"""How often :func:`wait_for_workers` says that it is still waiting."""
INSTALL_HINT = "pip install -c constraints.txt '.[dask]'"


@dataclass(frozen=True)
class Placement:
    """Where the trials of a search ran: ``backend`` (``"loky"`` or ``"dask"``), the
    scheduler's ``address`` (None for loky), worker processes and threads over all of them."""

    backend: str
    address: str | None
    workers: int
    threads: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for ``metrics.json``; ``where`` is :meth:`describe`."""
        return {**dataclasses.asdict(self), "where": self.describe()}

    def describe(self) -> str:
        """``"dask at tcp://10.0.0.5:8786: 4 workers, 4 threads"``."""
        where = f"{self.backend} at {self.address}" if self.address else f"{self.backend}"
        plural = "es" if self.workers != 1 else ""
        if self.backend == "loky":
            return f"{where} on this machine: {self.workers} worker process{plural}"
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        return f"{where}: {workers}, {self.threads} thread{'s' if self.threads != 1 else ''}"


def split_address(address: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a scheduler address; ``HOST:PORT`` means ``tcp``.

    Raises
    ------
    ConfigError
        ``"dask_address=... ..."`` for a web address (``http(s)://``, the dashboard's), an
        unknown scheme, a missing host, a bad port or a path after the port.
    """
    text = address.strip()
    scheme, sep, _ = text.partition("://")
    if not sep:
        text, scheme = f"tcp://{text}", "tcp"
    scheme = scheme.lower()
    if scheme in ("http", "https"):
        raise SettingError(
            "dask_address",
            address,
            f"is a web address (the dashboard's?); give the scheduler's, tcp://HOST:{DEFAULT_PORT}",
        )
    if scheme not in SCHEMES:
        schemes = ", ".join(f"{s}://" for s in SCHEMES)
        raise SettingError(
            "dask_address", address, f"has the unknown scheme {scheme!r}; use {schemes}"
        )
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise SettingError(
            "dask_address", address, f"has a bad port; expected {scheme}://HOST:PORT"
        ) from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise SettingError("dask_address", address, f"is not of the form {scheme}://HOST:PORT")
    return scheme, parts.hostname, port


def check_backend(backend: str, dask_address: str | None) -> None:
    """Refuse, before any work, a Dask search that cannot run here.

    Raises
    ------
    ConfigError
        If ``backend="dask"`` and ``distributed`` cannot be imported, or ``dask_address``
        is not a scheduler address (see :func:`split_address`).
    """
    if backend != "dask":
        return
    try:
        import distributed  # noqa: F401 - only whether it imports
    except ImportError as exc:
        raise ConfigError(
            f"backend='dask' needs the 'distributed' package ({exc}); install the project "
            f"with its dask extra: {INSTALL_HINT}"
        ) from None
    if dask_address is not None:
        split_address(dask_address)


def probe_scheduler(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Check that a Dask scheduler answers at ``address`` (``tcp://`` only, else no check).

    On ``tcp://`` the scheduler speaks first, while a web server (its dashboard) waits for
    a request and Dask's client would hang; so the probe waits for the first bytes.

    Raises
    ------
    SearchError
        One line naming ``address``: nothing listens there, or what listens sent no Dask
        handshake within ``timeout`` seconds (a web server such as the dashboard), or closed
        the connection.
    """
    scheme, host, port = split_address(address)
    if scheme != "tcp":  # TLS and websockets: the client speaks first; Dask's timeout applies
        return
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            first = sock.recv(1)
    except TimeoutError:
        raise SearchError(
            f"no Dask scheduler at {address}: the port accepted the connection but sent no "
            f"Dask handshake within {timeout:g} s (is it the dashboard's web port? the "
            f"scheduler listens on {DEFAULT_PORT} by default)"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise SearchError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    if not first:
        raise SearchError(
            f"no Dask scheduler at {address}: the connection was closed without a Dask "
            "handshake (is it the scheduler's port?)"
        )


def wait_for_workers(
    client: Any,
    address: str,
    timeout: float,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> None:
    """Wait until the scheduler of ``client`` has a worker, logging every
    :data:`WAIT_LOG_SECONDS` seconds.

    Raises
    ------
    SearchError
        No worker after ``timeout`` seconds; the message names ``address`` and the fix.
    """
    log = logger or logging.getLogger(__name__)
    every = WAIT_LOG_SECONDS
    start = time.monotonic()
    start_some = f"start some with `dask worker {address}`"
    while True:
        left = timeout - (time.monotonic() - start)
        try:
            client.wait_for_workers(1, timeout=max(0.1, min(every, left)))
            return
        except TimeoutError:
            left = timeout - (time.monotonic() - start)
        if left <= 0:
            raise SearchError(
                f"the Dask scheduler at {address} has no worker after {timeout:.0f} s: {start_some}"
            )
        log.warning(
            "the Dask scheduler at %s has no worker yet; waiting %.0f s more (of %.0f s): %s",
            address, left, timeout, start_some,
        )  # fmt: skip
