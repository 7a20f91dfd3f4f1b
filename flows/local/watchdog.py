"""The watchdog of a flow command: ``python -m flows.local.watchdog PID``, in a session of its own.

A command killed with ``kill -9`` can neither mark its flow runs crashed nor end its
children (the server, joblib's workers, a local Dask cluster). The command tells the
watchdog each flow run it starts (:func:`watched`); when the command dies inside
:func:`guarded`, the watchdog marks those runs Crashed, then ends every descendant it saw.
A watchdog rather than Linux's ``PR_SET_PDEATHSIG``: the children are started by
libraries that take no ``preexec_fn``, grandchildren are covered too, and it works on macOS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

POLL_SECONDS = 0.5
"""How often the watchdog checks that the command is alive and lists its descendants."""

GRACE_SECONDS = 5.0
"""How long a process gets to exit after ``SIGTERM`` before ``SIGKILL``."""

_watchdog: subprocess.Popen[bytes] | None = None  # this command's, while guarded


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


def _terminate(signum: int, _frame: Any) -> None:
    from prefect.exceptions import TerminationSignal  # late: the watchdog process stays light

    raise TerminationSignal(signum)


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Run a command's block watched by a watchdog; ``SIGTERM`` raises ``TerminationSignal``,
    so it takes Ctrl-C's orderly path (Prefect marks the run crashed).

    The watchdog is stopped when the block ends, normally or with an exception (the
    command cleans up itself then). Main thread only (signal handlers).
    """
    global _watchdog
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _watchdog = subprocess.Popen(
            [sys.executable, "-m", "flows.local.watchdog", str(os.getpid())],
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
    # SIGTERM: the command ended normally. os._exit, not sys.exit: an interpreter shutdown
    # waits a second for the reader thread's lock on stdin before giving up.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    watch(int(sys.argv[1]), sys.stdin.buffer)
