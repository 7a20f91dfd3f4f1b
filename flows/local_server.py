"""The local Prefect server that ``mnist-flow`` commands share; it stops itself when idle.

Without a Prefect API (``PREFECT_API_URL`` or a Prefect profile), a flow command needs a
server to record its run. Starting Prefect's temporary server for every command (a new
process that imports the server and opens the database before the run's first request)
is most of what a short command, such as a cached re-run, costs (``bench/pipeline_speed.py``).
So the first command starts one server and leaves it running for the next ones:

- the server is this module run as a process (``python -m flows.local_server serve``):
  Prefect's own application (``prefect.server.api.server:create_app``, configured as
  Prefect's temporary server: no UI, the services of an ephemeral server) under uvicorn on
  127.0.0.1, on a free port that the starting command binds and hands over (no race for
  the port), on the database of ``PREFECT_HOME``, the one ``prefect server start`` shows
  later. It runs in a session of its own, so neither Ctrl-C in the terminal nor the
  watchdog of :mod:`flows.lifetime` ends it with the command that started it.
- its files live in ``$PREFECT_HOME/mnist-flow-server/``: ``state.json`` (URL, pid, idle
  time; written atomically), ``lock`` (a :class:`filelock.FileLock`: two commands
  starting at once start one server), ``leases/`` (one file per command using it),
  ``last-used`` (touched when a command starts and ends) and ``server.log`` (its errors).
- a command takes the lock and uses the server of ``state.json`` if that process is alive
  and answers ``/health``; otherwise (no state, a dead pid, a port that does not answer)
  it starts a new one and replaces the state. It holds a lease while it runs.
- the server stops itself after ``MNIST_FLOW_SERVER_IDLE`` without a command (default 15
  minutes; ``900``, ``900s``, ``15m``, ``1h``): no live lease and no command started or
  ended for that long, decided under the lock, so a starting command finds either a
  running server or no state. ``mnist-flow server stop`` stops it at once and
  ``mnist-flow server`` shows it. ``MNIST_FLOW_SERVER_IDLE=0`` turns sharing off: each
  command starts and stops its own temporary server (:func:`flows.lifetime.temporary_server`).

Prefect's ``prefect server start --background`` is not used: it never stops by itself,
takes port 4200 (that of ``make server``) and builds and serves the UI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flows.lifetime import SERVER_MODULE, end_processes, server_environment
from nn.errors import ConfigError
from tasks.errors import MnistFlowError
from tasks.files import write_json_atomic

IDLE_ENV = "MNIST_FLOW_SERVER_IDLE"
DEFAULT_IDLE = 900.0
"""Seconds without a command after which the shared server stops (15 minutes)."""

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_STARTED: list[subprocess.Popen[bytes]] = []  # handles of the servers this process started


class ServerError(MnistFlowError):
    """The local Prefect server could not be started."""


def idle_seconds(environ: Any = os.environ) -> float:
    """The idle time of ``$MNIST_FLOW_SERVER_IDLE`` in seconds (0: no shared server)."""
    text = environ.get(IDLE_ENV, "").strip().lower()
    if not text:
        return DEFAULT_IDLE
    if text == "off":
        return 0.0
    match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([smh]?)", text)
    if not match:
        raise ConfigError(
            f"{IDLE_ENV}={environ[IDLE_ENV]!r}: expected seconds (900), minutes (15m) or "
            "hours (1h); 0 or off: a temporary server per command"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60, 1):g} min" if seconds >= 60 else f"{round(seconds, 1):g} s"


def _alive(pid: int, created: float) -> Any:
    """The ``psutil.Process`` ``pid`` if it runs and started at ``created``, else None."""
    import psutil

    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        if abs(process.create_time() - created) < 1 and process.status() != psutil.STATUS_ZOMBIE:
            return process
    return None


@dataclass(frozen=True)
class State:
    """What ``state.json`` records of the running server."""

    url: str
    pid: int
    created: float  # the process's start time: a pid reused by another process is not it
    idle: float
    started: float

    def process(self) -> Any:
        """The server's ``psutil.Process`` if it is still running, else None."""
        return _alive(self.pid, self.created)


def folder() -> Path:
    """``$PREFECT_HOME/mnist-flow-server``: the shared server's state, lock, leases and log."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser() / "mnist-flow-server"


def read_state(root: Path) -> State | None:
    """The state in ``root``, or None if there is none (or it is unreadable: treated as stale)."""
    try:
        return State(**json.loads((root / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def healthy(url: str, timeout: float = 5.0) -> bool:
    """Whether the Prefect API at ``url`` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _lock(root: Path, timeout: float) -> Any:
    from filelock import FileLock

    return FileLock(root / "lock", timeout=timeout)


def acquire(idle: float, timeout: float) -> tuple[str, bool]:
    """The API URL of the shared server (started if needed), leased to this process.

    Returns the URL and whether this call started the server. Raises
    :class:`ServerError` if a new server does not answer within ``timeout`` seconds.
    """
    root = folder()
    (root / "leases").mkdir(parents=True, exist_ok=True)
    with _lock(root, timeout + 60):
        state = read_state(root)
        if state is not None and state.process() is not None and healthy(state.url):
            _lease(root, state.url)
            return state.url, False
        if state is not None and (process := state.process()) and not _leased(root, state.url):
            end_processes([process])  # alive but not answering, and nobody uses it
        state = _start(root, idle, timeout)
        _lease(root, state.url)
    return state.url, True


def _lease(root: Path, url: str) -> None:
    import psutil

    me = psutil.Process()
    write_json_atomic(
        root / "leases" / f"{me.pid}.json",
        {"pid": me.pid, "created": me.create_time(), "url": url},
    )
    (root / "last-used").touch()


def release() -> None:
    """End this process's lease (the server's idle time starts now)."""
    root = folder()
    with contextlib.suppress(OSError):
        (root / "last-used").touch()
        (root / "leases" / f"{os.getpid()}.json").unlink()


def _last_used(root: Path, state: State) -> float:
    """When a command last started or ended (the server's start if none did since)."""
    try:
        return max(state.started, (root / "last-used").stat().st_mtime)
    except OSError:
        return state.started


def _leased(root: Path, url: str) -> bool:
    """Whether a live process holds a lease on the server at ``url``; drop dead leases."""
    busy = False
    for path in (root / "leases").glob("*.json"):
        try:
            lease = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being written
        if _alive(lease["pid"], lease["created"]) is None:
            with contextlib.suppress(OSError):
                path.unlink()
        elif lease["url"] == url:
            busy = True
    return busy


def _start(root: Path, idle: float, timeout: float) -> State:
    """Start a detached server on a free loopback port; wait for it; record it."""
    import psutil

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    env = server_environment()  # as Prefect's temporary server
    project = str(Path(__file__).resolve().parent.parent)  # importable from the state folder too
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project, os.environ.get("PYTHONPATH")]))
    args = [sys.executable, "-m", SERVER_MODULE, "serve", str(sock.fileno()), str(idle), str(root)]
    with open(root / "server.log", "wb") as log, sock:
        proc = subprocess.Popen(
            args,
            pass_fds=[sock.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=root,
            env=env,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C spares it
        )
    _STARTED.append(proc)
    deadline = time.monotonic() + timeout
    while not healthy(url, timeout=2):
        if proc.poll() is not None or time.monotonic() > deadline:
            end_processes([psutil.Process(proc.pid)] if proc.poll() is None else [])
            raise ServerError(
                f"the local Prefect server did not start within {timeout:g} s "
                f"(exit {proc.poll()}; its log: {root / 'server.log'})"
            )
        time.sleep(0.1)
    state = State(url, proc.pid, psutil.Process(proc.pid).create_time(), idle, time.time())
    write_json_atomic(root / "state.json", asdict(state))
    return state


def serve(fd: int, idle: float, root: Path) -> None:
    """Serve Prefect's API on the listening socket ``fd`` until idle for ``idle`` seconds."""
    import uvicorn

    config = uvicorn.Config(
        "prefect.server.api.server:create_app", factory=True, log_level="error", lifespan="on"
    )
    server = uvicorn.Server(config)
    sock = socket.socket(fileno=fd)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    args = (server, url, idle, root)
    threading.Thread(target=_stop_when_idle, args=args, daemon=True).start()
    server.run(sockets=[sock])


def _stop_when_idle(server: Any, url: str, idle: float, root: Path) -> None:
    """Set ``server.should_exit`` once idle, or once ``state.json`` no longer names this server.

    Decided under the lock, which the starting command holds until it has written the
    state and its lease: a command never receives a server that is about to stop.
    """
    from filelock import Timeout

    poll = min(5.0, max(0.2, idle / 10))
    while not server.should_exit:
        time.sleep(poll)
        if not root.is_dir():  # PREFECT_HOME deleted (the lock would create it again)
            server.should_exit = True
            break
        try:
            with _lock(root, 0):
                state = read_state(root)
                if _leased(root, url):
                    continue
                if state is None or state.pid != os.getpid():  # replaced, or stopped by hand
                    server.should_exit = True
                    continue
                if time.time() - _last_used(root, state) >= idle:
                    (root / "state.json").unlink()
                    server.should_exit = True
        except Timeout:
            continue  # a command holds the lock: look again later
        except OSError:  # the state cannot be read or removed: stop rather than linger
            server.should_exit = True


def stop() -> State | None:
    """Stop the shared server now (the running commands lose it); return what was stopped."""
    root = folder()
    if not root.is_dir():
        return None
    with _lock(root, 60):
        state = read_state(root)
        if state is None:
            return None
        process = state.process()
        with contextlib.suppress(FileNotFoundError):
            (root / "state.json").unlink()
        if process is not None:
            end_processes([process])
    return state if process is not None else None


def describe() -> str:
    """One line on the shared server of this ``PREFECT_HOME``: where, since when, its memory."""
    root = folder()
    state = read_state(root) if root.is_dir() else None
    process = state.process() if state else None
    if state is None or process is None:
        return f"no local Prefect server running (state: {root})"
    rss = process.memory_info().rss / 2**20
    now = time.time()
    used, up = now - _last_used(root, state), now - state.started
    return (
        f"local Prefect server at {state.url} (pid {state.pid}, up {_minutes(up)}, "
        f"{rss:.0f} MB resident, last command {_minutes(used)} ago; stops after "
        f"{_minutes(state.idle)} without a command)"
    )


def started_line(url: str, idle: float) -> str:
    """The line a command prints when it started the shared server."""
    return (
        f"mnist-flow: started a local Prefect server at {url} on the database of PREFECT_HOME "
        f"for this and later commands; it stops after {_minutes(idle)} without one "
        f"(`mnist-flow server stop` now; {IDLE_ENV}=0: a temporary server per command)"
    )


def add_parser(sub: argparse._SubParsersAction, formatter: Any) -> None:
    """The ``mnist-flow server`` subcommand."""
    p = sub.add_parser(
        "server",
        help="show or stop the local Prefect server that commands share",
        description="Without PREFECT_API_URL, the first flow command starts a local Prefect "
        "server (loopback, free port, the database of PREFECT_HOME) that later commands use; "
        f"it stops after {_minutes(DEFAULT_IDLE)} without a command (${IDLE_ENV}: 900, 15m, "
        "1h; 0: a temporary server per command instead).",
        formatter_class=formatter,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("status", "stop"),
        default="status",
        help="status: where it runs, its memory, when it stops (default); stop: stop it now",
    )


def command(action: str) -> int:
    """``mnist-flow server [status|stop]``."""
    if action == "stop":
        state = stop()
        print(f"stopped the local Prefect server at {state.url}" if state else describe())
    else:
        print(describe())
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    serve(int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))
