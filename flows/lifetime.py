"""A flow command's server, children and flow runs end when the command ends, however it ends.

- :func:`temporary_server`: without a configured Prefect API, the command runs its own
  ``prefect server start`` in a session of its own, because Prefect's temporary server
  sits in the terminal's process group, where Ctrl-C kills it before the command can
  record its flow run as crashed.
- :func:`guarded`: a watchdog process (``python -m flows.lifetime PID``), in a session of
  its own, because a command killed with ``kill -9`` can neither mark its flow runs crashed
  nor end its children (the server, joblib's workers, a local Dask cluster). The command
  tells it each flow run it starts (:func:`watched`); when the command dies without
  reaching the end of the block, the watchdog marks those runs Crashed, then ends every
  descendant it saw (``SIGTERM``, ``SIGKILL`` after a grace period). A watchdog rather than
  Linux's ``PR_SET_PDEATHSIG``: the children are started by libraries that take no
  ``preexec_fn``, grandchildren are covered too, and it works on macOS.

``SIGTERM`` to the command raises :class:`prefect.exceptions.TerminationSignal`, so it
takes the same orderly path as Ctrl-C (Prefect marks the run crashed).
"""

from __future__ import annotations

import contextlib
import json
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
from typing import IO, Any

from tasks.errors import MnistFlowError

POLL_SECONDS = 0.5
"""How often the watchdog checks that the command is alive and lists its descendants."""

GRACE_SECONDS = 5.0
"""How long a process gets to exit after ``SIGTERM`` before ``SIGKILL``."""

_watchdog: subprocess.Popen[bytes] | None = None  # this command's, while guarded

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

    Not Prefect's own temporary server: that one runs in the terminal's process group,
    where Ctrl-C kills it before the command can record its flow run as crashed. The
    server starts when the block begins; ``ready()`` waits until it answers and points
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


def watched(flow: Any) -> Any:
    """``flow`` telling the command's watchdog each run it starts (crashed if the command dies)."""
    return flow.with_options(on_running=[*flow.on_running_hooks, tell_watchdog])


def tell_watchdog(_flow: Any, flow_run: Any, _state: Any) -> None:
    """A flow's ``on_running`` hook: give the watchdog the run's id and API URL."""
    from prefect.settings import get_current_settings

    watchdog = _watchdog
    if watchdog is None or watchdog.stdin is None:
        return
    run = {"api_url": get_current_settings().api.url, "flow_run_id": str(flow_run.id)}
    with contextlib.suppress(OSError, ValueError):
        watchdog.stdin.write(json.dumps(run).encode() + b"\n")
        watchdog.stdin.flush()


def termination_signal() -> type[BaseException]:
    """Prefect's ``TerminationSignal`` (imported late: the watchdog process stays light)."""
    from prefect.exceptions import TerminationSignal

    return TerminationSignal


def _terminate(signum: int, _frame: Any) -> None:
    raise termination_signal()(signum)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Run a command's block watched by a watchdog, ``SIGTERM`` raising ``TerminationSignal``.

    A watchdog because a process killed with ``kill -9`` can clean up nothing itself. The
    watchdog is stopped when the block ends, normally or with an exception (the
    command cleans up itself then); it only acts when this process dies inside the block.
    Main thread only (signal handlers).
    """
    global _watchdog
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _watchdog = subprocess.Popen(
            [sys.executable, "-m", "flows.lifetime", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:  # cannot fork: run unguarded rather than not at all
        _watchdog = None
    try:
        yield
    finally:
        watchdog, _watchdog = _watchdog, None
        if watchdog is not None:
            watchdog.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=5)
            with contextlib.suppress(OSError):
                watchdog.stdin.close()  # type: ignore[union-attr]
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


def crash_runs(runs: list[dict[str, str]], pid: int) -> None:
    """Mark each flow run of ``runs`` (``api_url``, ``flow_run_id``) Crashed unless it ended."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed

    message = f"the mnist-flow command (process {pid}) was killed before its flow run ended"
    for run in runs:
        if not run.get("api_url"):  # no server to tell (get_client would start one here)
            continue
        with contextlib.suppress(Exception):  # a server gone, a run deleted: the others still
            with (
                temporary_settings(updates={PREFECT_API_URL: run["api_url"]}),
                get_client(sync_client=True) as client,
            ):
                state = client.read_flow_run(run["flow_run_id"]).state
                if state is None or not state.is_final():
                    client.set_flow_run_state(run["flow_run_id"], Crashed(message=message))


def watch(parent_pid: int, runs: IO[bytes] | None = None, poll: float = POLL_SECONDS) -> None:
    """Poll ``parent_pid`` until it is gone; crash the flow runs ``runs`` names, end descendants.

    ``runs`` gives one JSON object per line (:func:`tell_watchdog`), read in a thread.
    """
    import psutil

    told: list[dict[str, str]] = []

    def read() -> None:
        for line in runs or ():
            with contextlib.suppress(ValueError):
                told.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
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
                        known.setdefault((child.pid, child.create_time()), child)
        except psutil.NoSuchProcess:
            break
        except psutil.Error:
            pass
        time.sleep(poll)
    reader.join(timeout=1.0)  # the pipe ends with the command (unless a child inherited it)
    if told:
        crash_runs(list(told), parent_pid)  # while the command's server still listens
    end_processes(list(known.values()))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(int(sys.argv[1]), sys.stdin.buffer)
