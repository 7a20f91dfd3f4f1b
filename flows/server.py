"""The Prefect server of a flow command, found or started while the command imports the flows.

Without an API URL (``PREFECT_API_URL`` or a Prefect profile), a flow command needs a
local server: the one that commands share (:mod:`flows.local_server`), started by the
first command and reused by the next ones, or, with ``MNIST_FLOW_SERVER_IDLE=0``,
Prefect's temporary server of this process (:func:`flows.lifetime.temporary_server`).
:func:`load_flow` looks for (or starts) that server in a background thread as soon as
the options are parsed, so a new server boots on another core while this process imports
numpy, Prefect and the flows; :meth:`CommandServer.use` then points the flow run at it.
If the early attempt fails, :meth:`CommandServer.use` tries again in the foreground and
reports the error (the temporary server: the flow's first API call starts it, as Prefect
always does).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["CommandServer", "load_flow", "start_early"]


class CommandServer:
    """A background thread finding or starting the command's server (see the module docstring).

    ``idle`` is the shared server's idle time in seconds (:func:`flows.local_server.idle_seconds`),
    0 for a temporary server of this process.
    """

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.started = False  # this command started the server
        self.url: str | None = None  # the shared server's API URL, once found
        context = contextvars.copy_context()  # the caller's Prefect settings (test harness)
        self._thread = threading.Thread(
            target=context.run, args=(self._start,), name="prefect-server-start", daemon=True
        )

    @staticmethod
    def configured() -> bool:
        """Whether a Prefect API is configured (or the local server is turned off)."""
        from prefect.settings import get_current_settings

        settings = get_current_settings()
        return bool(settings.api.url) or not settings.server.ephemeral.enabled

    def _start(self) -> None:
        try:
            if self.configured():
                return  # a server is configured: nothing to start
            if self.idle:
                self._acquire()
            else:
                from flows.lifetime import session_server

                session_server().start()  # in its own session: Ctrl-C reaches the command only
                self.started = True
        except Exception:  # tried again in the foreground (use), which reports
            return

    def _acquire(self) -> None:
        from prefect.settings import get_current_settings

        from flows.local_server import acquire

        timeout = get_current_settings().server.ephemeral.startup_timeout_seconds
        self.url, self.started = acquire(self.idle, timeout)

    def wait(self) -> None:
        """Block until the start has finished (or failed)."""
        self._thread.join()

    @contextlib.contextmanager
    def use(self) -> Iterator[str | None]:
        """Run the block's flow against this command's server; yield its API URL.

        None is yielded when a Prefect API is configured. The shared server is leased
        for the block (its idle time starts when the block ends); a temporary server
        is stopped when the block ends.
        """
        from flows.lifetime import temporary_server

        self.wait()
        if not self.idle or self.configured():
            with temporary_server() as url:
                yield url
            return
        from flows.lifetime import using_api
        from flows.local_server import release, started_line

        if self.url is None:
            self._acquire()  # the early attempt failed: again, raising its error
        if self.started:
            print(started_line(str(self.url), self.idle), file=sys.stderr)
        try:
            with using_api(str(self.url)):
                yield self.url
        finally:
            release()


def start_early() -> CommandServer:
    """Find or start the command's Prefect server in a background thread; return its handle."""
    from flows.local_server import idle_seconds

    server = CommandServer(idle_seconds())  # a bad $MNIST_FLOW_SERVER_IDLE fails here
    server._thread.start()
    return server


def load_flow(module: str, name: str) -> tuple[Any, CommandServer]:
    """Import ``module``'s flow ``name`` while the server starts; return both."""
    server = start_early()
    try:
        return getattr(importlib.import_module(module), name), server
    finally:
        server.wait()
