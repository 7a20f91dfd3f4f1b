"""Wall time, per-step time, orchestration overhead and peak memory of ``mnist-flow run``.

Starts a Prefect server as ``make server`` does (``prefect server start``, here on a free
loopback port, in a fresh Prefect home inside a temporary folder, with a fresh cache and
registry), runs the default pipeline against it (``PREFECT_API_URL``), then identical
re-runs (which should reuse every cached step), each as a child process under
``/usr/bin/time -v``, and prints::

    run        wall   steps  overhead  peak RSS   test acc
    first      ...
    rerun      ...
    rerun-tmp  ...

``rerun`` is the re-run against the running server (target: at most 6 s);
``rerun-tmp`` the same command with no ``PREFECT_API_URL``, the zero-setup path, where
the command starts and stops a temporary server of its own (``flows/local/server.py``); both
interleaved ``--rounds`` times. ``steps`` is the sum of the step times the flow records in
``metrics.json`` (fetch, preprocess, search, train, evaluate, register, report);
``overhead`` is the process wall time minus that sum: interpreter start and imports, the
server's start (``rerun-tmp``), flow and task-run bookkeeping. Extra arguments go to
``mnist-flow run``.

Then the cost of a temporary server alone, each a child process running one empty flow:
against the running server, with Prefect's own temporary server (no API URL: Prefect
starts one in the process's group, which the terminal's Ctrl-C would kill), and with the
one ``mnist-flow`` starts (``prefect server start`` in a session of its own); the
difference to the first is each server's start and stop.

Three options are this script's own, not passed on:

- ``--serve FOLDER`` serves FOLDER over HTTP on 127.0.0.1 for the duration of the
  benchmark and gives ``mnist-flow run`` its URL with ``--mirror``: the first run then
  downloads, verifies and caches the four files as it does from the public mirrors,
  without the internet (the built-in mirrors are only tried when that one fails).
  When no option chooses the data (``--dataset``, ``--data-dir``, ``--mirror``), it is
  ``../shared/data/mnist`` beside the checkout (``$MNIST_FLOW_SHARED_DATA/mnist`` if
  set): the default ``mnist-flow run`` on the full MNIST (60,000 / 10,000), download
  included. Without that folder, ``mnist-flow run`` downloads from the public mirrors.
- ``--rounds N``: re-runs against the running and with a temporary server, alternated
  N times (default 1; 0: the first run only).
- ``--seeds N [N ...]``: one benchmark per seed (``--seed N``), each in a fresh
  temporary folder, then the mean ± standard deviation of the first runs' accuracy.

Usage::

    python bench/pipeline_speed.py                   # MNIST, the true default command
    python bench/pipeline_speed.py --trial-epochs 1 --final-epochs 1 --rounds 2  # re-runs
    python bench/pipeline_speed.py --seeds 0 1 2     # the same for three seeds
    python bench/pipeline_speed.py --dataset fashion-mnist --data-dir ../shared/data/fashion-mnist

Timings depend on the machine's load: repeat on a quiet machine before comparing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
STEPS = ("fetch", "preprocess", "search", "train", "evaluate", "register", "report")


def _env(home: Path) -> dict[str, str]:
    """The commands' environment: a fresh Prefect home, registry; no API URL (zero-setup)."""
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect-home")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env["MNIST_FLOW_REGISTRY"] = str(home / "registry")
    env.pop("PREFECT_API_URL", None)
    return env


@contextlib.contextmanager
def prefect_server(env: dict[str, str]) -> Iterator[str]:
    """``prefect server start`` (as ``make server``) on a free loopback port; yield its API URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"prefect server start did not answer at {url}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd`` under ``/usr/bin/time -v``; return (wall s, peak RSS MB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    peak = int(match.group(1)) / 1024 if match else float("nan")
    return wall, peak, proc.stdout


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves the folder; records each requested path on the server, logs nothing."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the benchmark's output to its figures."""


@contextlib.contextmanager
def loopback_mirror(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``folder`` on 127.0.0.1 (free port) in a thread; yield its URL and the paths asked."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


#: Options of ``mnist-flow run`` that choose the data: with none of them the benchmark
#: serves ``../shared/data/mnist`` on its loopback mirror (the default command's data).
DATA_OPTIONS = ("--dataset", "--data-dir", "--mirror")


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's options (``--serve``, ``--seeds``) and the rest, for ``mnist-flow run``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--serve", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=1)
    args, rest = parser.parse_known_args(argv)
    chosen = any(a.split("=")[0] in DATA_OPTIONS for a in rest)
    if args.serve is None and not chosen and (SHARED_DATA / "mnist").is_dir():
        args.serve = SHARED_DATA / "mnist"
    return args, rest


def main(argv: list[str]) -> None:
    """Benchmark ``mnist-flow run ARGV`` (first run, then an identical re-run) per seed."""
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    args, argv = parse(argv)
    seeds = args.seeds or [None]
    firsts = []
    with contextlib.ExitStack() as stack:
        if args.serve is not None:
            url, requests = stack.enter_context(loopback_mirror(args.serve))
            print(f"serving {args.serve} at {url} (loopback mirror)")
            argv = ["--mirror", url, *argv]
        else:
            requests = []
        for seed in seeds:
            before = len(requests)
            seed_args = argv if seed is None else [*argv, "--seed", str(seed)]
            firsts.append(run_twice(seed_args, args.rounds))
            if args.serve is not None:
                asked = sorted(requests[before:])
                print(f"mirror requests: {len(asked)} ({', '.join(asked)})")
    if len(firsts) > 1:
        acc = 100 * np.array([f[2] for f in firsts])
        wall = np.array([f[0] for f in firsts])
        peak = np.array([f[1] for f in firsts])
        print(
            f"first runs over seeds {' '.join(map(str, seeds))}: test accuracy "
            f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f} % ({', '.join(f'{a:.2f}' for a in acc)}), "
            f"wall {wall.mean():.0f} s (max {wall.max():.0f}), peak {peak.max():.0f} MB"
        )


def run_twice(argv: list[str], rounds: int = 1) -> tuple[float, float, float]:
    """Run ``mnist-flow run ARGV`` then identical re-runs; print the table and details.

    Returns the first run's wall time (s), peak RSS (MB) and test accuracy.
    """
    print(f"mnist-flow run {' '.join(argv)}")
    with tempfile.TemporaryDirectory(prefix="mnist-flow-bench-") as tmp:
        home = Path(tmp)
        env = _env(home)
        start = time.perf_counter()
        with prefect_server(env) as url:
            print(f"prefect server start (new database): {time.perf_counter() - start:.1f} s")
            served = {**env, "PREFECT_API_URL": url}
            header = ("run", "wall s", "steps s", "overhead s", "peak MB", "test acc")
            print("{:<9} {:>7} {:>8} {:>11} {:>8} {:>9}".format(*header))
            rows: dict[str, list[tuple[float, float, dict]]] = {}
            for i, name in enumerate(["first"] + ["rerun", "rerun-tmp"] * rounds):
                out = home / f"{name}-{i}"
                cmd = [sys.executable, "-m", "flows.cli", "run", "--cache-dir", str(home / "cache"),
                       "--out", str(out), *argv]  # fmt: skip
                wall, peak, _ = _timed(cmd, env if name == "rerun-tmp" else served)
                metrics = json.loads((out / "metrics.json").read_text())
                steps = sum(metrics["timings"].get(s, 0.0) for s in STEPS)
                rows.setdefault(name, []).append((wall, steps, metrics["timings"]))
                if name == "first":
                    first = (wall, peak, float(metrics["test_accuracy"]))
                    first_metrics = metrics
                print(
                    f"{name:<9} {wall:7.1f} {steps:8.1f} {wall - steps:11.1f} {peak:8.0f} "
                    f"{metrics['test_accuracy']:9.4f}"
                )
            for name, runs in rows.items():
                timings = runs[0][2]
                per_step = "  ".join(f"{s}={timings.get(s, 0.0):.1f}" for s in STEPS)
                print(f"{name} steps (s): {per_step}  flow total={timings['total']:.1f}")
            for name in ("rerun", "rerun-tmp") if rounds else ():  # --rounds 0: first only
                walls = [r[0] for r in rows[name]]
                print(f"{name} wall over {rounds} round(s): {min(walls):.1f}-{max(walls):.1f} s")
            if rounds:
                best = min(r[0] for r in rows["rerun"])
                verdict = "met" if best <= RERUN_TARGET else "NOT met"
                print(f"cached re-run against a running server: {best:.1f} s "
                      f"(target <= {RERUN_TARGET:g} s: {verdict}; load average "
                      f"{os.getloadavg()[0]:.1f})")  # fmt: skip
            server_cost(env, served)
        history = first_metrics["history"]
        trials = first_metrics["search"]["trials"]
        print(f"best trial parameters: {first_metrics['search']['best']['params']}")
        print(
            f"search: {len(trials)} trials, {sum(t['seconds'] for t in trials):.1f} s of training; "
            f"final model: {len(history)} epochs, "
            f"{sum(h['seconds'] for h in history) / len(history):.2f} s per epoch"
        )
    return first


RERUN_TARGET = 6.0
"""Seconds a cached re-run may take against a running server (issue 28)."""

EMPTY_FLOW = "from prefect import flow\nrun = flow(name='empty')(lambda: None)\n"

#: Child processes, each running one empty flow: on the running server, on Prefect's
#: own temporary server, on the temporary server ``mnist-flow`` starts.
SERVERS = {
    "running server": ("served", EMPTY_FLOW + "run()"),
    "Prefect's temporary server": ("zero-setup", EMPTY_FLOW + "run()"),
    "mnist-flow's temporary server": (
        "zero-setup",
        EMPTY_FLOW + "from flows.local.server import temporary_server\n"
        "with temporary_server() as ready:\n    ready()\n    run()",
    ),
}


def server_cost(env: dict[str, str], served: dict[str, str], repeats: int = 3) -> None:
    """Print the wall time of one empty flow per server (best of ``repeats``), interleaved."""
    seconds: dict[str, list[float]] = {name: [] for name in SERVERS}
    for _ in range(repeats):
        for name, (where, code) in SERVERS.items():
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], env=served if where == "served" else env,
                cwd=REPO_ROOT, check=True, capture_output=True,
            )  # fmt: skip
            seconds[name].append(time.perf_counter() - start)
    base = min(seconds["running server"])
    print(f"one empty flow, a process each (best of {repeats}, load average "
          f"{os.getloadavg()[0]:.1f}):")  # fmt: skip
    for name, values in seconds.items():
        extra = (
            ""
            if name == "running server"
            else f"  (server start and stop: {min(values) - base:.1f} s)"
        )
        print(f"  {name:<30} {min(values):5.1f} s{extra}")


if __name__ == "__main__":
    main(sys.argv[1:])
