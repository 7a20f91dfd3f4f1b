"""Prefect's temporary server, started while the command line imports the flows.

Without an API URL (``PREFECT_API_URL`` or a Prefect profile), a flow run starts a
temporary server the first time it needs the API: Prefect's
``SubprocessASGIServer`` launches a server process and waits until it answers,
which is most of the orchestration time of a cached re-run
(``bench/pipeline_speed.py`` gives the breakdown). :func:`start_early` starts that
same Prefect object in a background thread as soon as the options are parsed, so
the server process boots on another core while this process imports numpy,
scikit-learn, matplotlib and the flows (:func:`load_flow`); the flow's first API
call then finds the server running. The object is
Prefect's own (one per process), so Prefect still stops it at exit, and if the
early start fails, the flow's first API call starts it (and reports any error)
as it always did.
"""

from __future__ import annotations

import contextvars
import importlib
import threading
from typing import Any

__all__ = ["EarlyServer", "load_flow", "start_early"]


class EarlyServer:
    """A background thread starting Prefect's temporary server (see the module docstring)."""

    def __init__(self) -> None:
        self.started = False
        context = contextvars.copy_context()  # the caller's Prefect settings (test harness)
        self._thread = threading.Thread(
            target=context.run, args=(self._start,), name="prefect-server-start", daemon=True
        )

    def _start(self) -> None:
        try:
            from prefect.settings import get_current_settings

            settings = get_current_settings()
            if settings.api.url or not settings.server.ephemeral.enabled:
                return  # a server is configured: nothing to start
            from flows.lifetime import session_server

            session_server().start()  # in its own session: Ctrl-C reaches the command only
            self.started = True
        except Exception:  # the flow's first API call starts it again, and reports
            return

    def wait(self) -> None:
        """Block until the start has finished (or failed, leaving the start to Prefect)."""
        self._thread.join()


def start_early() -> EarlyServer:
    """Start Prefect's temporary server in a background thread; return its handle."""
    server = EarlyServer()
    server._thread.start()
    return server


def load_flow(module: str, name: str) -> Any:
    """Import ``module`` and return its flow ``name``, Prefect's server started meanwhile."""
    server = start_early()
    try:
        return getattr(importlib.import_module(module), name)
    finally:
        server.wait()
