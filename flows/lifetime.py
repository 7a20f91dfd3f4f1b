"""The lifetime of a command's child processes: they end when the command ends, however it ends.

Two pieces, both used by :func:`flows.cli.main` for the commands that run flows:

- :func:`temporary_server`: when no Prefect API is configured and the shared local server
  is turned off (:mod:`flows.local_server`), the command starts its own temporary Prefect
  server (as Prefect would) but in a session of its own, so the ``SIGINT``
  that Ctrl-C sends to the terminal's foreground process group reaches the command and
  not the server. The command can then report its flow run as crashed to a server that is
  still listening, and stop the server itself, instead of retrying a dead server for
  minutes.
- :func:`child_guard`: a watchdog process (``python -m flows.lifetime PID``), in a session
  of its own too, polls the command every half second and records its descendants (the
  temporary server, joblib's loky workers, a local Dask cluster). When the command dies
  without cleaning up (``kill -9``, a crash of the interpreter), the watchdog terminates them
  (``SIGTERM``, then ``SIGKILL`` after a grace period); not the local server that commands
  share (:mod:`flows.local_server`), which other commands may be using and which stops
  itself when idle. A watchdog rather than Linux's
  ``PR_SET_PDEATHSIG``: the children are started by libraries (Prefect, joblib, Dask) that
  take no ``preexec_fn``, grandchildren are covered too, and it works on macOS. A child
  started less than one polling interval before the command died is not known to it.

``SIGTERM`` to the command itself is turned into :class:`prefect.exceptions.TerminationSignal`
(see :func:`flows.cli.main`), so that case takes the same orderly path as Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

POLL_SECONDS = 0.5
"""How often the watchdog checks that the command is alive and lists its descendants."""

GRACE_SECONDS = 3.0
"""How long a descendant gets to exit after ``SIGTERM`` before ``SIGKILL``."""

SERVER_MODULE = "flows.local_server"
"""The module of the local server that commands share: the watchdog leaves it running."""


def _configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def server_environment() -> dict[str, str]:
    """The environment of a server process as Prefect's ``SubprocessASGIServer`` sets it.

    This process's environment, the UI off, the server marked ephemeral, and the
    Prefect settings in effect (those of the test harness, say) written out.
    """
    from prefect.settings import get_current_settings

    return {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }


def _server_class() -> Any:
    """A ``SubprocessASGIServer`` whose uvicorn process starts a session of its own."""
    import prefect
    from prefect.server.api.server import SubprocessASGIServer

    class SessionServer(SubprocessASGIServer):
        """Prefect's temporary server, out of the terminal's foreground process group."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # The command of SubprocessASGIServer._run_uvicorn_command (prefect 3), plus
            # start_new_session: Ctrl-C in the terminal must not kill the server.
            args = [
                *(sys.executable, "-m", "uvicorn", "--app-dir"),
                str(prefect.__module_path__.parent),
                *("--factory", "prefect.server.api.server:create_app"),
                *("--host", "127.0.0.1", "--port", str(self.port)),
                *("--log-level", "error", "--lifespan", "on"),
            ]
            return subprocess.Popen(args, env=server_environment(), start_new_session=True)

    return SessionServer


def session_server() -> Any:
    """Prefect's temporary-server object of this process, its server in a session of its own.

    Prefect keeps one such object per port (``None``: any free port), shared with its
    own code; the first call creates it, later calls return it.
    """
    return _server_class()()


@contextlib.contextmanager
def temporary_server() -> Iterator[str | None]:
    """Run the block against a temporary Prefect server of this process; yield its API URL.

    Nothing is started (and None is yielded) when an API URL is configured
    (``PREFECT_API_URL`` or the Prefect profile). The server is stopped when the block
    ends, also on ``KeyboardInterrupt``.
    """
    if _configured_api_url():
        yield None
        return
    server = session_server()
    try:
        server.start()
        with using_api(server.api_url):
            yield server.api_url
    finally:
        with uninterrupted():
            server.stop()


@contextlib.contextmanager
def using_api(url: str) -> Iterator[None]:
    """Point the block's Prefect client at ``url``; send the queued logs and events at its end."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            yield
        finally:
            with uninterrupted():
                drain()


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


def drain(timeout: float = 5.0) -> None:
    """Send the logs and events still queued while the server listens (as Prefect's harness)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout)


@contextlib.contextmanager
def child_guard() -> Iterator[subprocess.Popen[bytes] | None]:
    """Watch this process from a watchdog that ends its descendants if it dies; yield it.

    The watchdog is stopped when the block ends normally or with an exception (the
    command cleans up its own children then); it only acts when this process dies
    without reaching the end of the block.
    """
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-m", "flows.lifetime", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:  # cannot fork: run unguarded rather than not at all
        watchdog = None
    try:
        yield watchdog
    finally:
        if watchdog is not None:
            watchdog.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=5)


def termination_signal() -> type[BaseException]:
    """Prefect's ``TerminationSignal`` (imported late: the watchdog process stays light)."""
    from prefect.exceptions import TerminationSignal

    return TerminationSignal


def _terminate(signum: int, _frame: Any) -> None:
    raise termination_signal()(signum)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Run a command's block under :func:`child_guard`, ``SIGTERM`` raising ``TerminationSignal``.

    Prefect then marks the flow run crashed, as on Ctrl-C, instead of the interpreter
    ending without cleanup. Main thread only (signal handlers).
    """
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with child_guard():
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def end_processes(processes: list[Any], grace: float = GRACE_SECONDS) -> None:
    """``SIGTERM`` each ``psutil.Process`` still running; ``SIGKILL`` those left after ``grace``."""
    import psutil

    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running():  # also false when the pid now belongs to another process
                process.terminate()
                alive.append(process)
    _, left = psutil.wait_procs(alive, timeout=grace)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()


def watch(parent_pid: int, poll: float = POLL_SECONDS) -> None:
    """Poll ``parent_pid`` until it is gone, then end every descendant it had."""
    import psutil

    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return
    known: dict[tuple[int, float], psutil.Process] = {}
    while True:
        try:
            if not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE:
                break
            for child in parent.children(recursive=True):
                if child.pid != os.getpid():
                    with contextlib.suppress(psutil.Error):
                        if SERVER_MODULE not in child.cmdline():  # shared: it stops when idle
                            known.setdefault((child.pid, child.create_time()), child)
        except psutil.NoSuchProcess:
            break
        except psutil.Error:
            pass
        time.sleep(poll)
    end_processes(list(known.values()))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(int(sys.argv[1]))
