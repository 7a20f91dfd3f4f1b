"""Test accuracy of ``mnist-flow train`` with its default (recipe) settings, through the CLI.

Runs the real command line as a child process, in a temporary folder with its own
cache, registry, run directory and Prefect home, and prints the test accuracy
recorded in ``metrics.json`` with the command and the wall time.

Datasets, read from ``../shared/data`` beside the checkout (or ``$MNIST_FLOW_SHARED_DATA``):

- ``mnist`` (default): the standard split, 60,000 training and 10,000 test images:
  ``mnist-flow train --dataset mnist --data-dir <shared>/mnist``.
- ``mnist10k``: a small, fast benchmark: the real MNIST test set split stratified into 8,000
  training and 2,000 test images (``train_test_split(test_size=2000,
  stratify=labels, random_state=0)``, as ``bench/accuracy.py`` does), written as
  four standard IDX ``.gz`` files (``train-*`` the 8,000, ``t10k-*`` the 2,000) and
  read with ``mnist-flow train --dataset idx --data-dir <folder>``: the digits recipe.
- ``fashion-mnist``: ``mnist-flow train --dataset fashion-mnist --data-dir <shared>``.

``--val-size`` defaults to 0: the recipe does not stop early, so every training
image is trained on (the history then has no validation curves). Extra arguments
after ``--`` go to ``mnist-flow train``.

``--against-plain`` also runs ``mnist-flow train --recipe plain`` for every seed,
interleaved with the runs above (the order alternates from seed to seed, so that a
change in the machine's load falls on both alike), and prints the ratio of their
wall times: what the recipe costs against the classic training, in one run. The plain
run is always the classic one: the options after ``--`` go to the recipe's runs only.
``--against-unaugmented`` does the same with the recipe itself (with those options) and
``--augment none``: what the augmentation alone costs, epoch for epoch.

``--times-only`` prints the wall times and their ratio but no accuracy: the way to see
what a candidate setting costs (``-- --epochs 80``) while its choice is still being made
on validation data (``bench/validation.py``), without looking at the test set.

Examples::

    python bench/recipe_cli.py --seeds 0 1 2         # mnist, 3 seeds, mean ± std
    python bench/recipe_cli.py --dataset mnist10k    # the small benchmark, seed 0
    python bench/recipe_cli.py --dataset fashion-mnist --seed 1
    python bench/recipe_cli.py -- --epochs 20        # override one recipe setting
    python bench/recipe_cli.py --seeds 0 1 2 --against-plain
    python bench/recipe_cli.py --seeds 0 1 2 --against-unaugmented -- --epochs 5
    python bench/recipe_cli.py --seeds 0 0 --against-plain --times-only -- --epochs 80
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from accuracy import mnist10k_split, shared_data_dir  # noqa: E402

from tasks.files import write_bytes_atomic  # noqa: E402

DATASETS = ("mnist", "mnist10k", "fashion-mnist")


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file, atomically (:mod:`tasks.files`).

    Parameters
    ----------
    path:
        Target ``.gz`` file.
    array:
        uint8 images ``(n, 28, 28)`` or labels ``(n,)``.
    """
    data = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, data.ndim)
    header += struct.pack(f">{data.ndim}I", *data.shape)
    write_bytes_atomic(path, gzip.compress(header + data.tobytes()), fsync=False)


def write_mnist10k(folder: Path) -> None:
    """The mnist10k split of the real MNIST test set as four IDX ``.gz`` files in ``folder``."""
    X_train, y_train, X_test, y_test = mnist10k_split()
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (
        ("train-images-idx3-ubyte.gz", X_train),
        ("train-labels-idx1-ubyte.gz", y_train),
        ("t10k-images-idx3-ubyte.gz", X_test),
        ("t10k-labels-idx1-ubyte.gz", y_test),
    ):
        write_idx_gz(folder / name, array)


def run_train(
    dataset: str, seed: int, val_size: int | None, extra: list[str], command: str = "train"
) -> dict[str, object]:
    """Run ``mnist-flow <command>`` (``train`` or ``run``) on ``dataset``; return accuracy,
    wall time, command and the run's ``metrics.json`` (``val_size`` None: not given)."""
    with tempfile.TemporaryDirectory(prefix="recipe-cli-") as tmp_name:
        tmp = Path(tmp_name)
        if dataset == "mnist10k":
            data_dir = tmp / "mnist10k"
            write_mnist10k(data_dir)
            data = ["--dataset", "idx", "--data-dir", str(data_dir)]
        else:
            data = ["--dataset", dataset, "--data-dir", str(shared_data_dir() / dataset)]
        out = tmp / "run"
        split = [] if val_size is None else ["--val-size", str(val_size)]
        args = [*data, *split, "--seed", str(seed), *extra]
        env = {
            **os.environ,
            "PREFECT_HOME": str(tmp / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "MNIST_FLOW_CACHE": str(tmp / "cache"),
            "MNIST_FLOW_REGISTRY": str(tmp / "registry"),
        }
        env.pop("PREFECT_API_URL", None)
        argv = [sys.executable, "-m", "flows.cli", command, *args, "--out", str(out)]
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"mnist-flow {command} failed with exit status {proc.returncode}")
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        model = json.loads((out / "model.json").read_text(encoding="utf-8"))
    return {
        "dataset": dataset,
        "command": f"mnist-flow {command} " + shlex.join(args),
        "test_accuracy": float(metrics["test_accuracy"]),
        "epochs": len(metrics["history"]),
        "last_epoch": metrics["history"][-1],
        "epoch_seconds": float(np.mean([h["seconds"] for h in metrics["history"]])),
        "train_params": metrics["params"]["train"],
        "seconds": wall,
        "metrics": metrics,
        "weights_sha256": model["weights_sha256"],
    }


def report(result: dict[str, object], seed: int, times_only: bool = False) -> None:
    """Print one run: the command, its accuracy (unless ``times_only``) and wall time, its
    last epoch."""
    print(f"$ {result['command']}")
    accuracy = "" if times_only else f"test accuracy {100 * result['test_accuracy']:.2f} % "
    print(
        f"{result['dataset']} seed {seed}: {accuracy}after {result['epochs']} epochs,"
        f" {result['seconds']:.1f} s wall ({result['epoch_seconds']:.2f} s per epoch)",
        flush=True,
    )
    last = result["last_epoch"]
    print(
        f"  last epoch: train loss {last['train_loss']:.4f}, train accuracy"
        f" {100 * last['train_accuracy']:.2f} % (on the minibatches as trained)"
    )
    print(f"  train params: {json.dumps(result['train_params'], sort_keys=True)}")


def summary(name: str, values: list[float]) -> str:
    """``mean ± std`` of accuracies in %, or the single value."""
    array = 100 * np.asarray(values)
    if len(array) == 1:
        return f"{name}: {array[0]:.2f} %"
    return f"{name}: {array.mean():.2f} ± {array.std(ddof=1):.2f} % over {len(array)} seeds"


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run once per seed (and plain, interleaved) and print the runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--val-size", type=int, default=0, help="validation images held out")
    parser.add_argument(
        "--against-plain", action="store_true", help="also run --recipe plain and compare"
    )
    parser.add_argument(
        "--against-unaugmented",
        action="store_true",
        help="also run the recipe with --augment none and compare",
    )
    parser.add_argument(
        "--times-only",
        action="store_true",
        help="print the wall times and their ratio, no test accuracy",
    )
    parser.add_argument(
        "extra", nargs="*", help="after --: more options of mnist-flow train (the recipe's runs)"
    )
    args = parser.parse_args(argv)
    if args.against_plain and args.against_unaugmented:
        parser.error("--against-plain and --against-unaugmented: choose one")
    against = ["--recipe", "plain"] if args.against_plain else ["--augment", "none"]
    label = "plain" if args.against_plain else "unaugmented"
    compare = args.against_plain or args.against_unaugmented
    runs: dict[str, list[dict[str, object]]] = {"recipe": [], "plain": []}
    for number, seed in enumerate(args.seeds):
        order = ["recipe", "plain"] if compare else ["recipe"]
        for name in order[::-1] if number % 2 else order:
            extra = args.extra
            if name == "plain":
                extra = against if args.against_plain else [*args.extra, *against]
            result = run_train(args.dataset, seed, args.val_size, extra)
            runs[name].append(result)
            report(result, seed, args.times_only)
    if not args.times_only:
        print(summary("test accuracy", [float(r["test_accuracy"]) for r in runs["recipe"]]))
        if compare:
            print(summary(f"{label} recipe", [float(r["test_accuracy"]) for r in runs["plain"]]))
    if compare:
        ratios = [
            float(r["seconds"]) / float(p["seconds"])
            for r, p in zip(runs["recipe"], runs["plain"], strict=True)
        ]
        walls = [f"{float(r['seconds']):.1f}/{float(p['seconds']):.1f} s" for r, p in
                 zip(runs["recipe"], runs["plain"], strict=True)]  # fmt: skip
        epoch_ratio = statistics.median(
            float(r["epoch_seconds"]) / float(p["epoch_seconds"])
            for r, p in zip(runs["recipe"], runs["plain"], strict=True)
        )
        print(
            f"wall time against {shlex.join(against)}: {', '.join(f'{x:.2f}x' for x in ratios)}"
            f" (median {statistics.median(ratios):.2f}x; {', '.join(walls)});"
            f" mean epoch {epoch_ratio:.2f}x that of the {label} one"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
