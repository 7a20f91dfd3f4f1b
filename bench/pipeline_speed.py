"""Wall time, per-step time, orchestration overhead and peak memory of ``mnist-flow run``.

Runs the default pipeline, then identical re-runs (which should reuse every cached
step), each as a child process under ``/usr/bin/time -v``, in a fresh cache, registry
and Prefect home inside a temporary folder, and prints::

    run        wall   steps  overhead  peak RSS   test acc
    first      ...
    rerun      ...
    rerun-tmp  ...

``steps`` is the sum of the step times the flow records in ``metrics.json``
(fetch, preprocess, search, train, evaluate, register, report); ``overhead`` is the
process wall time minus that sum: interpreter start and imports, finding or
starting a Prefect server, flow and task-run bookkeeping. A warm-up flow first creates the
Prefect database of the temporary home, a one-time cost of a new installation
that is reported separately. Extra arguments go to ``mnist-flow run``.

The first run finds no Prefect server and starts the local server that commands share
(``flows/local_server.py``, default idle time); the re-run uses it. A third row,
``rerun-tmp``, repeats the re-run with ``MNIST_FLOW_SERVER_IDLE=0`` (a temporary server
of its own, as every command had before): both re-runs interleaved, ``--rounds`` times.

After the re-runs it breaks the re-run's wall time down: the flow's steps (from
``metrics.json``), and small child processes timed in the same Prefect home: importing
the pipeline's modules, starting (and stopping) Prefect's temporary server alone (the
cost the shared server saves), finding the running shared server (health check and
lease), and the modules' import with that look-up the way ``mnist-flow`` does them (in a
background thread: ``flows/server.py``). What the re-run spends beyond the steps and
that last figure is the flow run's own bookkeeping (task runs, states, logs, artifacts)
and the exit. Last, the price of the idle shared server: its resident memory and its
CPU time over ten idle seconds; then the benchmark stops it.

Three options are this script's own, not passed on:

- ``--serve FOLDER`` serves FOLDER over HTTP on 127.0.0.1 for the duration of the
  benchmark and gives ``mnist-flow run`` its URL with ``--mirror``: the first run then
  downloads, verifies and caches the four files as it does from the public mirrors,
  without the internet (the built-in mirrors are only tried when that one fails).
  When no option chooses the data (``--dataset``, ``--data-dir``, ``--mirror``), it is
  ``../shared/data/mnist`` beside the checkout (``$MNIST_FLOW_SHARED_DATA/mnist`` if
  set): the default ``mnist-flow run`` on the full MNIST (60,000 / 10,000), download
  included. Without that folder, ``mnist-flow run`` downloads from the public mirrors.
- ``--rounds N``: re-runs with the shared and with a temporary server, alternated N times
  (default 1).
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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
STEPS = ("fetch", "preprocess", "search", "train", "evaluate", "register", "report")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect-home")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env["MNIST_FLOW_REGISTRY"] = str(home / "registry")
    env.pop("PREFECT_API_URL", None)
    env.pop("MNIST_FLOW_SERVER_IDLE", None)  # the default: the shared local server
    return env


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
        warm = [sys.executable, "-c", "from prefect import flow; flow(lambda: None)()"]
        warm_wall, _, _ = _timed(warm, env)
        print(f"warm-up (new Prefect database, one time): {warm_wall:.1f} s")
        header = ("run", "wall s", "steps s", "overhead s", "peak MB", "test acc")
        print("{:<9} {:>7} {:>8} {:>11} {:>8} {:>9}".format(*header))
        rows: dict[str, list[tuple[float, float, dict]]] = {}
        names = ["first"] + ["rerun", "rerun-tmp"] * rounds
        try:
            for i, name in enumerate(names):
                out = home / f"{name}-{i}"
                cmd = [sys.executable, "-m", "flows.cli", "run", "--cache-dir", str(home / "cache"),
                       "--out", str(out), *argv]  # fmt: skip
                run_env = {**env, "MNIST_FLOW_SERVER_IDLE": "0"} if name == "rerun-tmp" else env
                wall, peak, _ = _timed(cmd, run_env)
                metrics = json.loads((out / "metrics.json").read_text())
                timings = metrics["timings"]
                steps = sum(timings.get(s, 0.0) for s in STEPS)
                rows.setdefault(name, []).append((wall, steps, timings))
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
            if rounds > 1:
                for name in ("rerun", "rerun-tmp"):
                    walls = [r[0] for r in rows[name]]
                    print(f"{name} wall over {rounds} rounds: {min(walls):.1f}-{max(walls):.1f} s")
            wall, steps, _ = min(rows["rerun"])
            breakdown(env, rerun_wall=wall, rerun_steps=steps)
            idle_cost(env)
        finally:
            stop = [sys.executable, "-m", "flows.cli", "server", "stop"]
            subprocess.run(stop, env=env, cwd=REPO_ROOT, check=False, capture_output=True)
        history = first_metrics["history"]
        trials = first_metrics["search"]["trials"]
        print(f"best trial parameters: {first_metrics['search']['best']['params']}")
        print(
            f"search: {len(trials)} trials, {sum(t['seconds'] for t in trials):.1f} s of training; "
            f"final model: {len(history)} epochs, "
            f"{sum(h['seconds'] for h in history) / len(history):.2f} s per epoch"
        )
    return first


#: Child processes that time the parts of a re-run outside its steps.
PARTS = {
    "imports": "import flows.pipeline",
    "temporary server": "from prefect.server.api.server import SubprocessASGIServer as S\n"
    "s = S(); s.start(); s.stop()",
    "shared server look-up": "from flows.local_server import acquire, release\n"
    "acquire(900, 180); release()",
    "both, as mnist-flow": "from flows.server import load_flow\n"
    "load_flow('flows.pipeline', 'mnist_pipeline')",
}


def breakdown(env: dict[str, str], *, rerun_wall: float, rerun_steps: float) -> None:
    """Print where the (fastest) re-run's wall time goes (see the module docstring)."""
    seconds = {}
    for name, code in PARTS.items():
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, check=True, capture_output=True
        )
        seconds[name] = time.perf_counter() - start
    bare = _interpreter(env)
    both = seconds["both, as mnist-flow"]
    print(
        f"re-run breakdown (s, each a child process, interpreter start {bare:.2f} included): "
        + "  ".join(f"{name}={value:.1f}" for name, value in seconds.items())
        + f"  steps={rerun_steps:.1f}  bookkeeping and exit="
        f"{rerun_wall - rerun_steps - both:.1f}  (wall {rerun_wall:.1f}, "
        f"load average {os.getloadavg()[0]:.1f})"
    )


def _interpreter(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


IDLE_PROBE = """
import time, psutil
from flows.local_server import folder, read_state
process = read_state(folder()).process()
before = sum(process.cpu_times()[:2]); time.sleep(10); after = sum(process.cpu_times()[:2])
print(process.memory_info().rss / 2**20, (after - before) / 10 * 100)
"""


def idle_cost(env: dict[str, str]) -> None:
    """Print the idle shared server's resident memory and CPU use (ten seconds of idling)."""
    proc = subprocess.run(
        [sys.executable, "-c", IDLE_PROBE], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(f"idle shared server: not found ({proc.stderr.strip().splitlines()[-1:]})")
        return
    rss, cpu = map(float, proc.stdout.split())
    print(
        f"idle shared server: {rss:.0f} MB resident, {cpu:.1f} % of one core over 10 s "
        "(until it stops, 15 min after the last command by default)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
