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

Usage::

    python bench/pipeline_speed.py --dataset fashion-mnist --data-dir ../shared/data/fashion-mnist

Without arguments it uses exactly these when ``../shared/data/fashion-mnist`` exists beside
the checkout (else the defaults of ``mnist-flow run``: MNIST, downloaded).

Timings depend on the machine's load: repeat on a quiet machine before comparing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED_FASHION = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fashion-mnist"
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


def main(argv: list[str]) -> None:
    """Benchmark ``mnist-flow run ARGV`` (first run, then an identical re-run)."""
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    if not argv and SHARED_FASHION.is_dir():
        argv = ["--dataset", "fashion-mnist", "--data-dir", str(SHARED_FASHION)]
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
