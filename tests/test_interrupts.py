"""Interrupts and kills of ``mnist-flow``: real signals to real process trees.

Ctrl-C is ``SIGINT`` to the whole process group, as a terminal sends it; the command
must stop within seconds with one line and exit 130, its flow run recorded as crashed,
nothing registered and no run folder. ``kill -9`` must not leave the temporary Prefect
server or joblib's workers behind, and its flow run ends Crashed. ``SIGTERM`` takes the
same orderly path as Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.local.watchdog import POLL_SECONDS
from tests.prefect_db import prefect_home

pytestmark = pytest.mark.slow

STARTUP_SECONDS = 300  # a temporary server migrating its database on a busy machine


def start(
    args: list[str], tmp_path: Path, api_url: str | None = None, seeded: bool = True
) -> subprocess.Popen:
    """Start ``mnist-flow ARGS`` in a new process group (like a terminal's job), own homes
    (a Prefect home with a migrated database unless not ``seeded``: see tests/prefect_db.py)."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home(tmp_path / "prefect-home", seeded)),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MNIST_FLOW_CACHE": str(tmp_path / "cache"),
        "MNIST_FLOW_REGISTRY": str(tmp_path / "registry"),
    }
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    with open(tmp_path / "stderr.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args, "--out", str(tmp_path / "run")],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
            preexec_fn=_default_ctrl_c,
        )


def _default_ctrl_c() -> None:
    """Ctrl-C as a terminal's shell gives it. A process inherits an ignored SIGINT, and the
    tests may run ignoring it: a shell without job control starts its background commands
    so (POSIX), as when ``make test &`` runs from a script."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ignores_ctrl_c(pid: int) -> bool:
    """Whether the process ``pid`` ignores SIGINT (its ``SigIgn`` mask in ``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


def wait_for(proc: subprocess.Popen, tmp_path: Path, ready) -> None:
    """Wait until ``ready()`` is true; fail (and kill the group) if the command ends or hangs."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"not ready (exit {proc.returncode}):\n{stderr(tmp_path)[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """Kill what is left of the command's tree (a failed test must not leave processes)."""
    with_children = [proc.pid]
    try:
        with_children += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    for pid in with_children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def stderr(tmp_path: Path) -> str:
    return (tmp_path / "stderr.log").read_text(errors="replace")


def training_started(tmp_path: Path):
    return lambda: "epoch 2/" in stderr(tmp_path)


def error_lines(tmp_path: Path) -> list[str]:
    return [line for line in stderr(tmp_path).splitlines() if line.startswith("mnist-flow: error")]


def train_args(mnist_dir: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(mnist_dir), "--train-size", "2000", "--epochs", "300",
            "--hidden", "64", "--augment", "none", *extra]  # fmt: skip


def gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still alive (zombies excluded) after ``timeout`` seconds."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def is_server(process: psutil.Process) -> bool:
    """Whether ``process`` is the command's temporary ``prefect server start``."""
    with contextlib.suppress(psutil.Error):
        return "prefect server start" in " ".join(process.cmdline())
    return False


def flow_run_states(home: Path) -> list[tuple[str, str]]:
    """(name, state type) of every flow run in the database of the Prefect home ``home``."""
    with contextlib.closing(sqlite3.connect(home / "prefect.db")) as db:
        return db.execute("SELECT name, state_type FROM flow_run").fetchall()


def test_ctrl_c_stops_within_seconds_with_one_line_and_a_crashed_run(tmp_path, mnist_dir):
    proc = start(train_args(mnist_dir), tmp_path)
    wait_for(proc, tmp_path, training_started(tmp_path))
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any(is_server(c) for c in children)  # the temporary server
    assert not ignores_ctrl_c(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"still running 60 s after Ctrl-C:\n{stderr(tmp_path)[-3000:]}")
    text = stderr(tmp_path)
    assert code == 130, text[-3000:]
    assert error_lines(tmp_path) == ["mnist-flow: error: interrupted (Ctrl-C)"]
    assert "Traceback" not in text and "ConnectError" not in text
    assert not gone(children, timeout=10)  # the server stopped with the command
    assert not (tmp_path / "run").exists() and not (tmp_path / "registry").exists()
    states = flow_run_states(tmp_path / "prefect-home")
    assert [state for name, state in states if name.startswith("train-mnist")] == ["CRASHED"]
    assert len(states) == 1


def test_kill_9_leaves_no_server_no_workers_and_a_crashed_run(tmp_path, mnist_dir):
    args = ["run", "--data-dir", str(mnist_dir), "--train-size", "2000", "--val-size", "500",
            "--trials", "4", "--trial-epochs", "100", "--n-jobs", "2"]  # fmt: skip
    proc = start(args, tmp_path, seeded=False)  # as on a new machine: the server migrates first

    def workers() -> list[psutil.Process]:
        try:
            tree = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [p for p in tree if "loky" in " ".join(p.cmdline())]

    wait_for(proc, tmp_path, lambda: len(workers()) >= 2)
    time.sleep(2 * POLL_SECONDS)  # the watchdog lists the command's children once per poll
    tree = psutil.Process(proc.pid).children(recursive=True)
    assert any(is_server(p) for p in tree)
    proc.kill()
    proc.wait(timeout=30)
    left = gone(tree, timeout=60)
    for process in left:  # do not leave them to the next test
        process.kill()
    assert not left, [" ".join(p.cmdline())[:120] for p in left]
    # the watchdog marked the run Crashed before it stopped the server
    states = flow_run_states(tmp_path / "prefect-home")
    assert [state for name, state in states if name.startswith("pipeline-mnist")] == ["CRASHED"]


def test_kill_9_leaves_the_run_crashed_on_a_configured_server(tmp_path, mnist_dir, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    proc = start(train_args(mnist_dir, "--seed", "9"), tmp_path, str(PREFECT_API_URL.value()))
    wait_for(proc, tmp_path, training_started(tmp_path))
    proc.kill()
    proc.wait(timeout=30)

    def states() -> list[str]:
        with get_client(sync_client=True) as client:
            runs = [r for r in client.read_flow_runs() if r.name.startswith("train-mnist")]
        return [r.state.type.value for r in runs if "seed9" in r.name]  # this test's run

    deadline = time.monotonic() + 60
    while states() != ["CRASHED"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert states() == ["CRASHED"]
    message = "was killed before its flow run ended"
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if "seed9" in r.name]
    assert message in runs[0].state.message


def test_sigterm_ends_the_run_like_ctrl_c(tmp_path, mnist_dir, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    proc = start(train_args(mnist_dir, "--seed", "7"), tmp_path, str(PREFECT_API_URL.value()))
    wait_for(proc, tmp_path, training_started(tmp_path))
    proc.terminate()
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"still running 60 s after SIGTERM:\n{stderr(tmp_path)[-3000:]}")
    assert code == 128 + signal.SIGTERM, stderr(tmp_path)[-3000:]
    assert error_lines(tmp_path) == ["mnist-flow: error: terminated (SIGTERM)"]
    assert "Traceback" not in stderr(tmp_path)
    assert not (tmp_path / "run").exists() and not (tmp_path / "registry").exists()
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.name.startswith("train-mnist")]
    runs = [r for r in runs if "seed7" in r.name]  # this test's run among the session's
    assert [r.state.type.value for r in runs] == ["CRASHED"]
