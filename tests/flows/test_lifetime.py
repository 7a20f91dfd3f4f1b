"""The watchdog of a flow command: crash the runs it was told, then end the command's children."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

import psutil
import pytest

from flows import lifetime

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
        lifetime, "crash_runs", lambda runs, pid: crashed.append((runs, pid, child.is_running()))
    )
    polled = threading.Event()  # set once the watchdog has listed the children and waits

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            polled.set()
            time.sleep(seconds)

    monkeypatch.setattr(lifetime, "time", Clock)
    watchdog = threading.Thread(target=lifetime.watch, args=(parent.pid, runs, 0.05))
    watchdog.start()
    try:
        assert polled.wait(timeout=30)
        parent.kill()
        parent.wait()
        watchdog.join(timeout=30)
        assert not watchdog.is_alive()
        assert crashed == [([told], parent.pid, True)]  # the server was still there
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if child.is_running():
            child.kill()


def test_a_command_that_ends_normally_crashes_nothing(monkeypatch):
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    called = []
    monkeypatch.setattr(lifetime, "crash_runs", lambda *args: called.append(args))
    lifetime.watch(done.pid, io.BytesIO(b""), poll=0.05)  # already gone: nothing to do
    assert called == []
