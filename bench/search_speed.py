"""Throughput of the random search, and successive halving against plain random search.

On the complete Fashion-MNIST (50,000 training and 10,000 validation images, read from
``--data-dir``, default ``../shared/data/fashion-mnist`` beside the checkout or
``$MNIST_FLOW_SHARED_DATA/fashion-mnist``):

1. *Throughput*: the same ``--trials`` trials x ``--epochs`` epochs (default 8 x 3, the
   default search space, seed 0) with ``n_jobs=2`` (two worker processes, one BLAS thread
   each) and with ``n_jobs=1`` (one process, two BLAS threads). Reports trials per minute
   and their ratio; the target on a 2-core machine is at least 1.5x.
2. *Halving*: ``--halving-trials`` configurations (default 8) of the pipeline's search
   (anchored on the Fashion-MNIST recipe: its space, its shared settings with the schedule
   compressed to ``--halving-epochs``, default 9, and the recipe as trial 0), as plain
   random search (every trial for all the epochs) and as successive halving with
   continuation (factor 3: every trial for 1 epoch, the best third continue from their
   checkpoints to 3, the best of those to 9; the recipe always promoted), both with
   ``n_jobs=2``. Reports wall time, epochs trained, the best validation accuracy of each,
   and where halving's best ranks in the plain search's results. Continuation is exact,
   so a trial that reaches the last round has the same accuracy in both searches.

No trial store is used (every trial trains); the worker processes are started (a tiny
warm-up search) before timing. Timings are wall-clock on a machine shared
with other work: expect noise, and compare runs made one after the other.

Example::

    python bench/search_speed.py
    python bench/search_speed.py --trials 4 --epochs 1 --skip-halving   # quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tasks.data.prepare import PreparedData, PrepareParams, prepare  # noqa: E402
from tasks.data.sources import fetch_files  # noqa: E402
from tasks.settings import recipe_for  # noqa: E402
from tasks.tuning.anchor import recipe_point, recipe_space, trial_base  # noqa: E402
from tasks.tuning.extras import augment_extras  # noqa: E402
from tasks.tuning.overrides import build_space  # noqa: E402
from tasks.tuning.runner import SearchResult, run_search  # noqa: E402

SHARED = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO.parent / "shared" / "data"))


def prepared_fashion(data_dir: Path, cache_dir: Path, train_size: int | None) -> PreparedData:
    """Fashion-MNIST split into training and 10,000 validation images, stored as .npy."""
    files = fetch_files("fashion-mnist", data_dir=data_dir, cache_dir=cache_dir)
    out = cache_dir / f"prepared-{train_size or 'all'}"
    return prepare(files, PrepareParams(val_size=10_000, train_size=train_size), out)


def timed_search(data: PreparedData, **kwargs: Any) -> tuple[float, SearchResult]:
    """Run a search (default space) and return its wall time in seconds and its result."""
    start = time.perf_counter()
    result = run_search(data, build_space(), **kwargs)
    return time.perf_counter() - start, result


def bench_throughput(data: PreparedData, trials: int, epochs: int) -> dict[str, float]:
    """Trials per minute with two single-threaded workers and one two-threaded process."""
    rates: dict[str, float] = {}
    # start the two worker processes and their imports before timing anything
    run_search(data, build_space({"hidden": 8}), n_trials=2, trial_epochs=1, seed=99, n_jobs=2)
    print(f"\n## Throughput: {trials} trials x {epochs} epochs, {data.n_train} training images")
    print("| n_jobs | BLAS threads per trial | seconds | trials/min | best val acc |")
    print("| --- | --- | --- | --- | --- |")
    for n_jobs, threads in ((2, 1), (1, 2)):
        seconds, result = timed_search(
            data, n_trials=trials, trial_epochs=epochs, seed=0, n_jobs=n_jobs
        )
        rates[f"n_jobs={n_jobs}"] = 60.0 * trials / seconds
        print(
            f"| {n_jobs} | {threads} | {seconds:.1f} | {rates[f'n_jobs={n_jobs}']:.2f} "
            f"| {result.best_val_accuracy:.4f} |"
        )
    rates["ratio"] = rates["n_jobs=2"] / rates["n_jobs=1"]
    print(f"\nthroughput ratio n_jobs=2 / n_jobs=1: {rates['ratio']:.2f}x (target >= 1.5x)")
    return rates


def anchored(epochs: int) -> dict[str, Any]:
    """The pipeline's search on Fashion-MNIST: recipe-centred space, shared base, trial 0."""
    recipe = recipe_for("fashion-mnist")
    space = build_space({}, recipe_space(recipe))
    reference, _ = recipe_point(space, recipe)
    return {
        "space": space,
        "base": trial_base(recipe, epochs),
        "reference": reference,
        "extras_handler": augment_extras,
    }


def bench_halving(data: PreparedData, trials: int, epochs: int) -> dict[str, float]:
    """Plain random search against successive halving with continuation, same candidates."""
    common = {"n_trials": trials, "trial_epochs": epochs, "seed": 1, "n_jobs": 2}
    setup = anchored(epochs)
    space = setup.pop("space")
    start = time.perf_counter()
    plain = run_search(data, space, **common, **setup)
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    halving = run_search(data, space, halving=True, **common, **setup)
    halving_s = time.perf_counter() - start
    final = {t["trial"]: t for t in plain.trials}
    ranked = sorted(
        (t for t in plain.trials if t["status"] == "ok"),
        key=lambda t: t["best_val_accuracy"],
        reverse=True,
    )
    top = halving.choice["top"]["trial"]
    rank = [t["trial"] for t in ranked].index(top) + 1
    print(f"\n## Successive halving vs plain random search: {trials} trials, {epochs} epochs")
    print("| search | seconds | epochs trained | best trial | best val acc | kept |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, seconds, result in (("plain", plain_s, plain), ("halving", halving_s, halving)):
        spent = sum(int(t["epochs"]) - int(t.get("resumed") or 0) for t in result.trials)
        print(
            f"| {name} | {seconds:.1f} | {spent} | #{result.choice['top']['trial']} "
            f"| {result.choice['top']['val_accuracy']:.4f} | {result.choice['chosen']} |"
        )
    same = final[top]["best_val_accuracy"]
    best = plain.choice["top"]["val_accuracy"]
    print(
        f"\nhalving's best #{top} ranks {rank} of {len(ranked)} in the plain search (its "
        f"{epochs}-epoch accuracy there: {same:.4f}, plain best {best:.4f}, difference "
        f"{100 * (best - same):.2f} points, one standard error "
        f"{100 * plain.choice['margin']:.2f}); time ratio plain/halving: "
        f"{plain_s / halving_s:.2f}x (machine shared with other work)"
    )
    return {
        "plain_s": plain_s,
        "halving_s": halving_s,
        "rank": rank,
        "plain_best": best,
        "halving_best": halving.choice["top"]["val_accuracy"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmarks selected on the command line and return their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED / "fashion-mnist")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a temp dir")
    parser.add_argument("--train-size", type=int, default=None, help="default: all 50,000")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--halving-trials", type=int, default=8)
    parser.add_argument("--halving-epochs", type=int, default=9)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-halving", action="store_true")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        cache = args.cache_dir or Path(tmp)
        data = prepared_fashion(args.data_dir, cache, args.train_size)
        print(f"cores: {os.cpu_count()}; data: {data.name}, {data.n_train} train, {data.n_val} val")
        if not args.skip_throughput:
            figures["throughput"] = bench_throughput(data, args.trials, args.epochs)
        if not args.skip_halving:
            figures["halving"] = bench_halving(data, args.halving_trials, args.halving_epochs)
    return figures


if __name__ == "__main__":
    main()
