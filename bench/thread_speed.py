"""Training epochs with 1 and 2 BLAS threads, plain and elastic: what ``--threads`` buys.

On the complete MNIST (60,000 images, standardised), 784-300-10, batch 128,
momentum 0.9, learning rate 0.05, each case trains ``--epochs`` epochs through
:func:`tasks.fitting.fit.fit`, the function ``mnist-flow train`` runs, with a fixed
number of BLAS threads:

- ``plain N``: no augmentation, ``N`` BLAS threads;
- ``elastic N``: elastic distortions, prepared one minibatch ahead in a thread of
  their own (as ``mnist-flow train`` does on more than one core), ``N`` BLAS threads.

The cases are interleaved, ``--rounds`` times, each round starting with the next
case, so that a change in the machine's load falls on every case alike. It prints
the mean seconds per epoch of each case in each round, the best and the median over
the rounds, the ratio ``N threads / 1 thread`` of the medians (below 0.8 is the
25 % gain that would justify more than one thread by default) and the load average.

Example::

    python bench/thread_speed.py --rounds 3 --epochs 2
"""

from __future__ import annotations

import argparse
import os
import statistics
from types import SimpleNamespace

import numpy as np
from accuracy import shared_data_dir

from nn.train import EpochRecord, TrainConfig
from tasks.data.idx import read_idx
from tasks.fitting.augment import default_augment, make_augmenter
from tasks.fitting.fit import fit

LR, MOMENTUM, BATCH = 0.05, 0.9, 128


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's training images, standardised float32 (60000, 784), and labels (60000,)."""
    folder = shared_data_dir() / "mnist"
    X = read_idx(folder / "train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32)
    X = (X - X.mean()) / X.std()
    y = read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    return np.ascontiguousarray(X, dtype=np.float32), y


def epoch_seconds(X: np.ndarray, y: np.ndarray, epochs: int, augment: str, threads: int) -> float:
    """Mean seconds per epoch of :func:`fit` with ``augment`` and ``threads`` BLAS threads."""
    splits = SimpleNamespace(X_train=X, y_train=y, X_val=None, y_val=None)
    config = TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR, momentum=MOMENTUM)
    records: list[EpochRecord] = []
    augmenter = make_augmenter(default_augment("mnist", augment))
    fit(
        splits, [300], 10, config, rng=np.random.default_rng(0),
        callback=records.append, augment=augmenter, threads=threads,
    )  # fmt: skip
    return statistics.mean(r.seconds for r in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="counts to time")
    args = parser.parse_args(argv)
    X, y = load_mnist()
    cases = [(kind, n) for kind in ("none", "elastic") for n in args.threads]
    times: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    load = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        order = cases[round_ % len(cases) :] + cases[: round_ % len(cases)]
        for kind, n in order:
            times[kind, n].append(epoch_seconds(X, y, args.epochs, kind, n))
    load.append(os.getloadavg()[0])
    print(f"{os.cpu_count()} CPUs; {args.rounds} rounds x {args.epochs} epochs, MNIST 784-300-10")
    print(f"load average {load[0]:.1f} before, {load[1]:.1f} after\n")
    print("| case | s/epoch best | s/epoch median | per round |")
    print("| --- | ---: | ---: | --- |")
    for (kind, n), values in times.items():
        name = f"{'plain' if kind == 'none' else kind} {n}"
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {rounds} |")
    print()
    base = args.threads[0]
    for kind in ("none", "elastic"):
        for n in args.threads[1:]:
            ratio = statistics.median(times[kind, n]) / statistics.median(times[kind, base])
            per_round = [a / b for a, b in zip(times[kind, n], times[kind, base], strict=True)]
            shown = ", ".join(f"{r:.2f}" for r in per_round)
            name = "plain" if kind == "none" else kind
            print(f"{name} {n} / {base} threads: {ratio:.2f} (per round {shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
