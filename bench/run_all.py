"""Run the benchmarks one after another and print their figures (``make bench``).

Each benchmark is its own script under ``bench/`` and can be run alone with
``--help`` for its options; this runner only calls them in turn, each in a
fresh Python process so one cannot warm the caches of the next.

Usage::

    python bench/run_all.py                 # every benchmark with its defaults
    python bench/run_all.py --only nn data  # a selection
    python bench/run_all.py --list

Benchmarks are not tests: they take minutes and print numbers meant for a person.
Run them on an otherwise idle machine; load from other processes skews every timing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: name -> (script, arguments, what it measures)
BENCHMARKS: dict[str, tuple[str, list[str], str]] = {
    "nn": ("nn_speed.py", ["--epochs", "10"], "epoch time against scikit-learn's MLPClassifier"),
    "data": ("data_speed.py", [], "fetch + preprocess, cold and warm"),
    "augment": ("augment_speed.py", [], "cost of an augmented epoch"),
    "threads": (
        "thread_speed.py",
        [],
        "1 and 2 BLAS threads, plain and elastic epochs",
    ),
    "search": ("search_speed.py", [], "parallel trials and successive halving"),
    "pipeline": ("pipeline_speed.py", [], "the default `mnist-flow run`, then a cached re-run"),
    "run-vs-train": ("run_vs_train.py", [], "default run against default train, seed 0"),
    "report": ("report_speed.py", [], "time and size of the report's plots"),
    "predict": ("predict_images.py", [], "predictions on image files"),
    "accuracy": ("accuracy.py", [], "accuracy table over three seeds (the longest)"),
}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (script, _, what) in BENCHMARKS.items():
            print(f"{name:<10} bench/{script:<20} {what}")
        return 0
    failed = []
    for name in args.only or list(BENCHMARKS):
        script, extra, what = BENCHMARKS[name]
        print(f"\n## {name}: {what}\n", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(BENCH / script), *extra])
        print(f"\n({name}: {time.perf_counter() - start:.0f} s, exit {code})", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
