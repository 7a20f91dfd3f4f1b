"""The temporary Prefect server of a flow command run without a configured Prefect API.

Not Prefect's own temporary server: that one sits in the terminal's process group, where
Ctrl-C kills it before the command can record its flow run as crashed; this one runs
``prefect server start`` in a session of its own, on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import IO

from flows.local.watchdog import end_processes
from tasks.errors import MnistFlowError

SERVER_COMMAND = (sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                  "--no-ui", "--no-scheduler", "--no-late-runs", "--analytics-off",
                  "--log-level", "ERROR")  # fmt: skip
"""Prefect's public CLI, without what a one-command server does not need."""


class ServerError(MnistFlowError):
    """The command's temporary Prefect server did not start."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class _Server:
    """``prefect server start`` (no UI, scheduler or late-run marking) on a free loopback port."""

    ATTEMPTS = 3  # another process may take the free port before the server binds it

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.attempts = 0

    def start(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        self.attempts += 1
        self.process = subprocess.Popen(
            [*SERVER_COMMAND, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # out of the terminal's process group: Ctrl-C spares it
        )

    def wait(self, timeout: float) -> str:
        """Wait until the server answers; return its API URL."""
        deadline = time.monotonic() + timeout
        while not _healthy(self.url):
            assert self.process is not None
            if self.process.poll() is not None and self.attempts < self.ATTEMPTS:
                self.start()
            elif self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.log.seek(0)
                lines = self.log.read().decode(errors="replace").strip().splitlines()
                why = f"exit {code}" if code is not None else f"no answer after {timeout:g} s"
                raise ServerError(
                    f"the temporary Prefect server (prefect server start) did not start "
                    f"({why}: {lines[-1].strip() if lines else 'no output'}); start one "
                    "(`make server`) and set PREFECT_API_URL=http://127.0.0.1:4200/api"
                )
            time.sleep(0.1)
        return self.url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            import psutil

            with uninterrupted(), contextlib.suppress(psutil.Error):
                end_processes([psutil.Process(self.process.pid)])
            self.process.wait()


@contextlib.contextmanager
def temporary_server() -> Iterator[Callable[[], None]]:
    """Give the block a temporary Prefect server when none is configured; yield ``ready``.

    The server starts when the block begins; ``ready()`` waits until it answers and points
    Prefect's client at it, so the caller can import its flows meanwhile. With an API URL
    (``PREFECT_API_URL``, a profile) or Prefect's ephemeral mode turned off, nothing is
    started and ``ready()`` does nothing. The server is stopped when the block ends, after
    the queued logs and events are sent, also on ``KeyboardInterrupt``.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield lambda: None
        return
    env = {**os.environ, **settings.to_environment_variables(exclude_unset=True)}
    with tempfile.TemporaryFile() as log, contextlib.ExitStack() as stack:
        server = _Server(env, log)
        stack.callback(server.stop)
        server.start()

        def ready() -> None:
            url = server.wait(settings.server.ephemeral.startup_timeout_seconds)
            stack.enter_context(using_api(url))  # left before the server stops

        yield ready


def local_run_settings() -> dict:
    """Prefect settings of a flow run on the command's temporary server: no flow-run
    heartbeats. The server ends with the command, so no one is left to miss one (the
    watchdog marks a killed command's run Crashed), and Prefect's heartbeat thread sleeps in
    whole seconds, which every flow run waited for at its end (0.5 to 1 s)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    return {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}


@contextlib.contextmanager
def using_api(url: str) -> Iterator[None]:
    """Point the block's Prefect client at ``url``, with :func:`local_run_settings`; at its
    end, send the queued logs and events while the server still listens (as Prefect's test
    harness does)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url, **local_run_settings()}):
        try:
            yield
        finally:
            with uninterrupted():
                for worker in (APILogWorker, EventsWorker):
                    worker.drain_all(timeout=5.0)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Ignore a second Ctrl-C while cleaning up (bounded: a few seconds), main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
