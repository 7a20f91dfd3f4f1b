"""The local Prefect server that commands share: reuse, idle stop, stale state, the watchdog."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from flows import lifetime, local_server
from nn.errors import ConfigError

STARTED = "mnist-flow: started a local Prefect server at "


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("", 900.0), ("900", 900.0), ("15m", 900.0), ("1h", 3600.0), ("2.5s", 2.5), ("0", 0.0),
     ("off", 0.0)],
)  # fmt: skip
def test_idle_time_from_the_environment(text, seconds):
    assert local_server.idle_seconds({local_server.IDLE_ENV: text}) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "15 min", "1d"])
def test_a_bad_idle_time_names_the_variable(text):
    with pytest.raises(ConfigError, match=rf"MNIST_FLOW_SERVER_IDLE='{text}'.*15m"):
        local_server.idle_seconds({local_server.IDLE_ENV: text})


def test_leases_of_dead_processes_are_dropped(tmp_path):
    (tmp_path / "leases").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = psutil.Process()
    leases = {
        "mine": {"pid": me.pid, "created": me.create_time(), "url": "http://a/api"},
        "dead": {"pid": dead.pid, "created": time.time() - 5, "url": "http://a/api"},
        "reused": {"pid": me.pid, "created": me.create_time() - 100, "url": "http://a/api"},
    }
    for name, lease in leases.items():
        (tmp_path / "leases" / f"{name}.json").write_text(json.dumps(lease))
    assert local_server._leased(tmp_path, "http://a/api")  # this process holds one
    assert not local_server._leased(tmp_path, "http://b/api")  # none on another server
    assert sorted(p.stem for p in (tmp_path / "leases").iterdir()) == ["mine"]


class FakeServer:
    should_exit = False


def watch_idle(root: Path, idle: float, seconds: float) -> FakeServer:
    """Run the server's idle watch on ``root`` for at most ``seconds``; return the server."""
    server = FakeServer()
    url = "http://127.0.0.1:9/api"
    thread = threading.Thread(target=local_server._stop_when_idle, args=(server, url, idle, root))
    thread.start()
    thread.join(timeout=seconds)
    stopped = server.should_exit
    server.should_exit = True  # ends the watch if it is still going
    thread.join()
    server.should_exit = stopped
    return server


def write_state(root: Path, **changes: object) -> None:
    now = time.time()
    state = {"url": "http://127.0.0.1:9/api", "pid": os.getpid(), "created": 0.0, "idle": 0.3,
             "started": now - 10} | changes  # fmt: skip
    local_server.write_json_atomic(root / "state.json", state)
    (root / "last-used").touch()
    os.utime(root / "last-used", (now - 5, now - 5))


def test_an_idle_server_stops_and_removes_its_state(tmp_path):
    write_state(tmp_path)
    assert watch_idle(tmp_path, idle=0.3, seconds=10).should_exit
    assert not (tmp_path / "state.json").exists()


def test_a_leased_server_does_not_stop(tmp_path):
    write_state(tmp_path)
    (tmp_path / "leases").mkdir()
    me = psutil.Process()
    lease = {"pid": me.pid, "created": me.create_time(), "url": "http://127.0.0.1:9/api"}
    (tmp_path / "leases" / "1.json").write_text(json.dumps(lease))
    assert not watch_idle(tmp_path, idle=0.3, seconds=1.5).should_exit
    assert (tmp_path / "state.json").exists()


def test_a_server_whose_home_was_deleted_stops_without_recreating_it(tmp_path):
    root = tmp_path / "home" / "mnist-flow-server"
    assert watch_idle(root, idle=0.3, seconds=10).should_exit
    assert not (tmp_path / "home").exists()


def test_a_server_that_the_state_no_longer_names_stops(tmp_path):
    write_state(tmp_path, pid=os.getpid() + 1, idle=9)
    assert watch_idle(tmp_path, idle=9, seconds=10).should_exit  # not idle yet: replaced
    assert (tmp_path / "state.json").exists()  # the other server's


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: list[str], tmp_path: Path) -> subprocess.Popen:
    """Start ``mnist-flow ARGS`` with its own Prefect home, cache and registry, idle time 8 s."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "MNIST_FLOW_CACHE": str(tmp_path / "cache"),
        "MNIST_FLOW_REGISTRY": str(tmp_path / "registry"),
        "MNIST_FLOW_SERVER_IDLE": "8s",
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "flows.cli", *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return finish(launch(args, tmp_path))


def state(tmp_path: Path) -> local_server.State | None:
    return local_server.read_state(tmp_path / "home" / "mnist-flow-server")


def train(mnist_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(mnist_dir), "--train-size", "1000", "--epochs", "1",
            "--hidden", "32", "--augment", "none", "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
def test_commands_share_one_server_that_stops_when_idle(tmp_path, mnist_dir):
    racing = [  # two commands starting at once (own caches and registries): one server
        launch(train(mnist_dir, tmp_path / name, "--cache-dir", str(tmp_path / f"cache-{name}"),
                     "--registry", str(tmp_path / f"registry-{name}")), tmp_path)
        for name in ("a", "b")
    ]  # fmt: skip
    first = [finish(proc) for proc in racing]
    assert sum(proc.stderr.count(STARTED) for proc in first) == 1
    server = state(tmp_path)
    assert server is not None and server.idle == 8.0
    process = server.process()
    assert process is not None and "flows.local_server" in process.cmdline()
    assert local_server.healthy(server.url)

    later = run(train(mnist_dir, tmp_path / "c"), tmp_path)  # after both have ended
    assert STARTED not in later.stderr
    assert state(tmp_path) == server  # the same server, still running
    with sqlite3.connect(tmp_path / "home" / "prefect.db") as db:
        runs = db.execute("SELECT name, state_type FROM flow_run").fetchall()
    assert [s for n, s in runs if n.startswith("train-mnist")] == ["COMPLETED"] * 3

    psutil.wait_procs([process], timeout=8 + 30)  # idle time, a poll, the shutdown
    assert not process.is_running()
    assert state(tmp_path) is None and not local_server.healthy(server.url)


@pytest.mark.slow
def test_a_stale_state_file_is_replaced_and_stop_ends_the_server(tmp_path, mnist_dir):
    root = tmp_path / "home" / "mnist-flow-server"
    root.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = local_server.State(
        f"http://127.0.0.1:{free_port()}/api", dead.pid, time.time(), 8.0, time.time()
    )
    local_server.write_json_atomic(root / "state.json", stale.__dict__)
    first = run(train(mnist_dir, tmp_path / "a"), tmp_path)  # a dead pid: a new server
    assert first.stderr.count(STARTED) == 1
    server = state(tmp_path)
    assert server is not None and server.pid != dead.pid and local_server.healthy(server.url)

    wrong = server.__dict__ | {"url": f"http://127.0.0.1:{free_port()}/api"}  # a wrong port
    local_server.write_json_atomic(root / "state.json", wrong)
    second = run(train(mnist_dir, tmp_path / "b"), tmp_path)
    assert second.stderr.count(STARTED) == 1
    replaced = state(tmp_path)
    assert replaced is not None and replaced.pid != server.pid
    assert not psutil.pid_exists(server.pid)  # the unanswering server was ended

    stopped = run(["server", "stop"], tmp_path)
    assert stopped.stdout.strip() == f"stopped the local Prefect server at {replaced.url}"
    assert not psutil.pid_exists(replaced.pid) and state(tmp_path) is None
    assert run(["server"], tmp_path).stdout.startswith("no local Prefect server running")


PARENT = """
import subprocess, sys, time
sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
plain, shared = subprocess.Popen(sleep), subprocess.Popen([*sleep, "flows.local_server"])
print(plain.pid, shared.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_the_watchdog_spares_the_shared_server(tmp_path):
    """A command killed with ``kill -9``: its watchdog ends its children, not the shared server."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    plain, shared = (psutil.Process(int(pid)) for pid in parent.stdout.readline().split())
    watchdog = threading.Thread(target=lifetime.watch, args=(parent.pid, 0.1))
    watchdog.start()
    time.sleep(1.0)  # a few polls: it has seen both children
    parent.kill()
    parent.wait()
    watchdog.join(timeout=30)
    try:
        assert not watchdog.is_alive()
        assert not plain.is_running() or plain.status() == psutil.STATUS_ZOMBIE
        assert shared.is_running()
    finally:
        for process in (plain, shared):
            if process.is_running():
                process.kill()
