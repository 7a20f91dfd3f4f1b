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

Examples::

    python bench/recipe_cli.py --seeds 0 1 2         # mnist, 3 seeds, mean ± std
    python bench/recipe_cli.py --dataset mnist10k    # the small benchmark, seed 0
    python bench/recipe_cli.py --dataset fashion-mnist --seed 1
    python bench/recipe_cli.py -- --epochs 20        # override one recipe setting
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
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


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run once per seed and print one line per run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--val-size", type=int, default=0, help="validation images held out")
    parser.add_argument("extra", nargs="*", help="after --: more options of mnist-flow train")
    args = parser.parse_args(argv)
    accuracies = []
    for seed in args.seeds:
        result = run_train(args.dataset, seed, args.val_size, args.extra)
        accuracies.append(result["test_accuracy"])
        print(f"$ {result['command']}")
        print(
            f"{result['dataset']} seed {seed}: test accuracy {100 * result['test_accuracy']:.2f} %"
            f" after {result['epochs']} epochs, {result['seconds']:.0f} s wall"
            f" ({result['epoch_seconds']:.2f} s per epoch)",
            flush=True,
        )
        last = result["last_epoch"]
        print(
            f"  last epoch: train loss {last['train_loss']:.4f}, train accuracy"
            f" {100 * last['train_accuracy']:.2f} % (on the minibatches as trained)"
        )
        print(f"  train params: {json.dumps(result['train_params'], sort_keys=True)}")
    if len(accuracies) > 1:
        values = 100 * np.asarray(accuracies)
        print(f"mean {values.mean():.2f} ± {values.std(ddof=1):.2f} % over {len(values)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
