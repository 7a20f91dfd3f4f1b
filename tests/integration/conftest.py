"""A real ``prefect server start`` on a free loopback port, and the ``prefect`` CLI against it.

One server serves the integration tests (a test module that needs a server of its own starts
one with :func:`running_server` and says why). The server runs with a temporary
``PREFECT_HOME`` (its own SQLite database and profiles), so the tests never touch a
developer's Prefect setup; each module gets its own registry and cache, so the models of one
module never meet another's. The work pool, the deployments of ``prefect.yaml`` and one
process worker are set up once, on first use. Every command runs in its own process group
and is killed with its children when it overruns. The server and the worker are stopped,
pass or fail, when the integration tests of the process are over, not at the end of the
session: with a worker asking for runs every second, an idle server costs about 5 CPU
seconds a minute, which the other tests' processes need. A failing test gets the tail of
the server log attached to its report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.prefect_db import prefect_home

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The venv's ``prefect`` executable, beside the interpreter running the tests.
PREFECT = Path(sys.executable).parent / "prefect"
#: Seconds allowed for the server to answer ``/api/health`` (a loaded 2-core CI machine
#: has been seen to need 40 s for the first start, which creates the database).
HEALTH_TIMEOUT = 240.0
LOG_TAIL_LINES = 200


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop ``process`` and everything in its process group: SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # the leader may be gone while children of its group linger: make sure they go too
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def start_logged(
    command: Sequence[str], cwd: Path, env: dict[str, str], log_path: Path
) -> subprocess.Popen:
    """Start ``command`` in its own process group, its output to ``log_path``
    (stop it with :func:`stop_group`)."""
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass(frozen=True)
class CommandResult:
    """What a finished ``prefect`` command printed."""

    args: tuple[str, ...]
    returncode: int
    output: str  # stdout and stderr interleaved
    seconds: float

    def describe(self) -> str:
        """The command, its exit code, duration and output, for assertion messages."""
        command = " ".join(self.args)
        return (
            f"$ prefect {command}\n(exit {self.returncode} after {self.seconds:.1f} s)\n"
            f"{self.output}"
        )


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server and the environment its CLI commands and workers use."""

    api_url: str
    home: Path
    log_path: Path
    env: dict[str, str]

    def prefect(self, *args: str, timeout: float = 120.0, check: bool = True) -> CommandResult:
        """Run ``prefect <args>`` from the repository root against this server.

        The command runs in its own process group (the worker's flow runs included)
        and the whole group is killed if it overruns ``timeout`` seconds.

        Raises
        ------
        AssertionError
            If ``check`` and the command exits non-zero or times out; the message holds
            its output.
        """
        log = self.home / f"cmd-{time.monotonic_ns()}.log"
        start = time.perf_counter()
        with open(log, "w", encoding="utf-8") as out:
            process = subprocess.Popen(
                [str(PREFECT), *args],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_group(process)
                returncode = -1
            finally:
                stop_group(process, grace=5.0)  # e.g. a flow-run process left behind
        result = CommandResult(
            args=tuple(args),
            returncode=returncode,
            output=tail(log),
            seconds=time.perf_counter() - start,
        )
        if check and returncode != 0:
            what = f"timed out after {timeout:.0f} s" if returncode == -1 else "failed"
            raise AssertionError(f"command {what}:\n{result.describe()}")
        return result

    def client(self):  # -> SyncPrefectClient; imported lazily like the rest of Prefect
        """A synchronous Prefect client of this server (use it as a context manager)."""
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url)

    def log_tail(self) -> str:
        """The last lines of the server log."""
        return tail(self.log_path)


def _environment(home: Path, api_url: str, extra: dict[str, str]) -> dict[str, str]:
    """The current environment without Prefect or mnist-flow settings, plus the given ones."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "MNIST_FLOW_"))
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_CLI_COLORS": "false",
            "NO_COLOR": "1",
            "COLUMNS": "200",  # keeps the CLI's tables and ids on one line
            "PYTHONUNBUFFERED": "1",
            "PWD": str(REPO_ROOT),  # prefect.yaml's pull step reads {{ $PWD }}
            **extra,
        }
    )
    return env


def _wait_healthy(process: subprocess.Popen, api_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"prefect server exited with code {process.returncode} before it was "
                f"healthy; its log:\n{tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"prefect server at {api_url} not healthy after {HEALTH_TIMEOUT:.0f} s; its log:\n"
        f"{tail(log_path)}"
    )


@contextlib.contextmanager
def running_server(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[PrefectServer]:
    """Start ``prefect server start`` under ``root``; stop it (process group) on exit.

    ``root/home`` is ``PREFECT_HOME``; ``root/server.log`` the server's output.
    """
    home = prefect_home(root / "home")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _environment(home, api_url, extra_env or {})
    log_path = root / "server.log"
    command: Sequence[str] = [
        str(PREFECT),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = start_logged(command, root, env, log_path)
    try:
        _wait_healthy(process, api_url, log_path)
        yield PrefectServer(api_url=api_url, home=home, log_path=log_path, env=env)
    finally:
        stop_group(process)


def module_folders(server: PrefectServer, root: Path) -> PrefectServer:
    """``server`` with its registry and cache under ``root`` (for the commands, the worker's
    flow runs take them as job variables: see :func:`run_deployment`)."""
    extra = {"MNIST_FLOW_REGISTRY": str(root / "registry"), "MNIST_FLOW_CACHE": str(root / "cache")}
    return dataclasses.replace(server, env={**server.env, **extra})


@pytest.fixture(scope="package")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The real Prefect server of the integration tests, with its UI (``test_approval_ui``)."""
    root = tmp_path_factory.mktemp("prefect-server")
    with running_server(root) as server:
        yield module_folders(server, root)


@pytest.fixture(scope="module")
def prefect_server(
    shared_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> PrefectServer:
    """The session's server, with a registry and cache of this module's own."""
    return module_folders(shared_server, tmp_path_factory.mktemp("module"))


POOL = "mnist-pool"
"""The process work pool of ``prefect.yaml``'s deployments."""


@pytest.fixture(scope="package")
def deployment_set(shared_server: PrefectServer) -> PrefectServer:
    """The shared server with the work pool and every deployment of ``prefect.yaml``."""
    shared_server.prefect("work-pool", "create", POOL, "--type", "process")
    shared_server.prefect("--no-prompt", "deploy", "--all", timeout=180)
    return shared_server


@dataclass(frozen=True)
class Worker:
    """A running ``prefect worker start`` of :data:`POOL` and its log."""

    log_path: Path

    def log_tail(self) -> str:
        return tail(self.log_path)


#: How often the shared worker asks the server for runs (Prefect's default: every 10 s).
WORKER_QUERY_SECONDS = "1"


@pytest.fixture(scope="package")
def worker(deployment_set: PrefectServer) -> Iterator[Worker]:
    """One process worker of :data:`POOL`, as ``make worker`` starts it."""
    root = deployment_set.home.parent
    env = {**deployment_set.env, "PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS}
    command = [PREFECT, "worker", "start", "--pool", POOL, "--type", "process"]
    log_path = root / "worker.log"
    process = start_logged(command, REPO_ROOT, env, log_path)
    try:
        yield Worker(log_path)
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def deployed(deployment_set: PrefectServer, prefect_server: PrefectServer) -> PrefectServer:
    """This module's view of the server with the pool and every deployment of ``prefect.yaml``."""
    return prefect_server


FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def wait_for_final_state(server: PrefectServer, flow_run_id: Any, timeout: float, what: str):
    """Poll the flow run until it is completed, failed, crashed or cancelled; return it.

    Raises
    ------
    AssertionError
        If it is not over within ``timeout`` seconds; the message names its state and ``what``.
    """
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state is not None and flow_run.state.type.value in FINAL_STATES:
                return flow_run
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"flow run {flow_run.name} still {flow_run.state!r} after {timeout:.0f} s;"
                    f"\n{what}"
                )
            time.sleep(0.5)


def job_environment(server: PrefectServer) -> str:
    """The ``--job-variable`` that gives a deployment's flow run this view's registry and cache."""
    keys = ("MNIST_FLOW_REGISTRY", "MNIST_FLOW_CACHE")
    return "env=" + json.dumps({key: server.env[key] for key in keys})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attach the tail of the server log to the report of a failing test that used it."""
    report = yield
    server = getattr(item, "funcargs", {}).get("prefect_server")
    if report.failed and isinstance(server, PrefectServer):
        title = f"Prefect server log (last {LOG_TAIL_LINES} lines)"
        report.sections.append((title, server.log_tail()))
    return report
