"""Wall time, per-step time, orchestration overhead and peak memory of ``mnist-flow run``.

Runs the default pipeline twice with identical inputs (the second run should reuse
every cached step) as a child process under ``/usr/bin/time -v``, each in a fresh
cache, registry and Prefect home inside a temporary folder, and prints::

    run        wall   steps  overhead  peak RSS   test acc
    first     ...
    rerun     ...

``steps`` is the sum of the step times the flow records in ``metrics.json``
(fetch, preprocess, search, train, evaluate, register, report); ``overhead`` is the
process wall time minus that sum: interpreter start and imports, the temporary
Prefect server, flow and task-run bookkeeping. A warm-up flow first creates the
Prefect database of the temporary home, a one-time cost of a new installation
that is reported separately. Extra arguments go to ``mnist-flow run``.

``--serve FOLDER`` (taken by this script, not passed on) serves FOLDER over HTTP on
127.0.0.1 for the duration of the benchmark and gives ``mnist-flow run`` its URL with
``--mirror``: the first run then downloads, verifies and caches the four files as it
does from the public mirrors, without the internet (the built-in mirrors are only
tried when that one fails).

Usage::

    python bench/pipeline_speed.py                   # MNIST, the true default command
    python bench/pipeline_speed.py --serve ../shared/data/mnist
    python bench/pipeline_speed.py --dataset fashion-mnist --data-dir ../shared/data/fashion-mnist

Without arguments it uses ``--serve ../shared/data/mnist`` when that folder exists beside
the checkout (``$MNIST_FLOW_SHARED_DATA/mnist`` if set): the default ``mnist-flow run`` on
the full MNIST (60,000 / 10,000), download included. Otherwise the defaults of
``mnist-flow run`` download MNIST from the public mirrors.

Timings depend on the machine's load: repeat on a quiet machine before comparing.
"""

from __future__ import annotations

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

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
STEPS = ("fetch", "preprocess", "search", "train", "evaluate", "register", "report")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect-home")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env["MNIST_FLOW_REGISTRY"] = str(home / "registry")
    env.pop("PREFECT_API_URL", None)
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


def _take_serve(argv: list[str]) -> tuple[Path | None, list[str]]:
    """Split ``--serve FOLDER`` off ``argv`` (default: ``../shared/data/mnist`` when no argv)."""
    if not argv:
        folder = SHARED_DATA / "mnist"
        return (folder if folder.is_dir() else None), []
    if "--serve" not in argv:
        return None, argv
    i = argv.index("--serve")
    if i + 1 >= len(argv):
        raise SystemExit("--serve needs a folder")
    return Path(argv[i + 1]), argv[:i] + argv[i + 2 :]


def main(argv: list[str]) -> None:
    """Benchmark ``mnist-flow run ARGV`` (first run, then an identical re-run)."""
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    serve, argv = _take_serve(argv)
    with contextlib.ExitStack() as stack:
        if serve is not None:
            url, requests = stack.enter_context(loopback_mirror(serve))
            print(f"serving {serve} at {url} (loopback mirror)")
            argv = ["--mirror", url, *argv]
        else:
            requests = []
        run_twice(argv)
        if serve is not None:
            print(f"mirror requests: {len(requests)} ({', '.join(sorted(requests))})")


def run_twice(argv: list[str]) -> None:
    """Run ``mnist-flow run ARGV`` then an identical re-run; print the table and details."""
    print(f"mnist-flow run {' '.join(argv)}")
    with tempfile.TemporaryDirectory(prefix="mnist-flow-bench-") as tmp:
        home = Path(tmp)
        env = _env(home)
        warm = [sys.executable, "-c", "from prefect import flow; flow(lambda: None)()"]
        warm_wall, _, _ = _timed(warm, env)
        print(f"warm-up (new Prefect database, one time): {warm_wall:.1f} s")
        header = ("run", "wall s", "steps s", "overhead s", "peak MB", "test acc")
        print("{:<7} {:>7} {:>8} {:>11} {:>8} {:>9}".format(*header))
        rows = []
        for name in ("first", "rerun"):
            out = home / name
            cmd = [
                sys.executable,
                "-m",
                "flows.cli",
                "run",
                "--cache-dir",
                str(home / "cache"),
                "--out",
                str(out),
                *argv,
            ]
            wall, peak, _ = _timed(cmd, env)
            metrics = json.loads((out / "metrics.json").read_text())
            timings = metrics["timings"]
            steps = sum(timings.get(s, 0.0) for s in STEPS)
            rows.append((name, timings))
            print(
                f"{name:<7} {wall:7.1f} {steps:8.1f} {wall - steps:11.1f} {peak:8.0f} "
                f"{metrics['test_accuracy']:9.4f}"
            )
        for name, timings in rows:
            per_step = "  ".join(f"{s}={timings.get(s, 0.0):.1f}" for s in STEPS)
            print(f"{name} steps (s): {per_step}  flow total={timings['total']:.1f}")
        metrics = json.loads((home / "first" / "metrics.json").read_text())
        history = metrics["history"]
        trials = metrics["search"]["trials"]
        print(f"best trial parameters: {metrics['search']['best']['params']}")
        print(
            f"search: {len(trials)} trials, {sum(t['seconds'] for t in trials):.1f} s of training; "
            f"final model: {len(history)} epochs, "
            f"{sum(h['seconds'] for h in history) / len(history):.2f} s per epoch"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
