"""A flow command's temporary server and watchdog: crash the runs, then end the children."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time

import psutil
import pytest

from flows.local import server, watchdog

PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_killed_command_has_its_runs_crashed_before_its_children_end(monkeypatch):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    told = {"api_url": "http://127.0.0.1:9/api", "flow_run_id": "0f0e"}
    runs = io.BytesIO(b"not json\n" + json.dumps(told).encode() + b"\n")
    crashed = []
    monkeypatch.setattr(
        watchdog, "crash_runs", lambda runs, pid: crashed.append((runs, pid, child.is_running()))
    )
    polled = threading.Event()  # set once the watchdog has listed the children and waits

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            polled.set()
            time.sleep(seconds)

    monkeypatch.setattr(watchdog, "time", Clock)
    watcher = threading.Thread(target=watchdog.watch, args=(parent.pid, runs, 0.05))
    watcher.start()
    try:
        assert polled.wait(timeout=30)
        parent.kill()
        parent.wait()
        watcher.join(timeout=30)
        assert not watcher.is_alive()
        assert crashed == [([told], parent.pid, True)]  # the server was still there
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if child.is_running():
            child.kill()


def test_a_command_that_ends_normally_crashes_nothing(monkeypatch):
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    called = []
    monkeypatch.setattr(watchdog, "crash_runs", lambda *args: called.append(args))
    watchdog.watch(done.pid, io.BytesIO(b""), poll=0.05)  # already gone: nothing to do
    assert called == []


def test_the_watchdog_of_a_command_that_ends_exits_at_once_and_cleanly():
    """Stopped while its reader thread waits on the pipe, the watchdog exits with 0: an
    interpreter shutdown would wait for that thread's lock on stdin, then abort."""
    with watchdog.guarded():
        started = watchdog._watchdog
        assert started is not None
        process = psutil.Process(started.pid)
        deadline = time.monotonic() + 60
        while process.num_threads() < 2 and time.monotonic() < deadline:  # the reader runs
            time.sleep(0.05)
        assert process.num_threads() >= 2
    assert started.returncode == 0


@pytest.mark.slow
def test_the_installed_prefect_takes_the_temporary_servers_options():
    """A Prefect upgrade that renames an option of ``prefect server start`` fails here."""
    help_text = subprocess.run(
        [sys.executable, "-m", "prefect", "server", "start", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    ).stdout
    options = [arg for arg in server.SERVER_COMMAND if arg.startswith("--")]
    assert options and all(
        re.search(rf"(?<![\w-]){option}(?![\w-])", help_text) for option in options
    )


def test_a_server_that_cannot_start_is_one_line_naming_its_output(monkeypatch, tmp_path):
    failing = (sys.executable, "-c", "import sys; print('Port in use'); sys.exit(1)")
    monkeypatch.setattr(server, "SERVER_COMMAND", failing)
    with open(tmp_path / "log", "w+b") as log:
        started = server._Server(dict(os.environ), log)
        started.start()
        with pytest.raises(server.ServerError) as error:
            started.wait(timeout=60)
    assert started.attempts == server._Server.ATTEMPTS  # a new free port each time
    assert "did not start (exit 1: Port in use); start one (`make server`)" in str(error.value)
    assert "\n" not in str(error.value)


def test_flow_runs_on_the_temporary_server_send_no_heartbeats():
    """A Prefect upgrade that renames the heartbeat setting fails here (the import)."""
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):  # the default
        with server.using_api("http://127.0.0.1:9/api"):
            settings = get_current_settings()
            assert settings.api.url == "http://127.0.0.1:9/api"
            assert settings.flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == 180
