"""Cost of data augmentation: one training epoch with each augmentation kind against none.

Trains the 784-300-10 network for one epoch at batch size 128 on the complete
Fashion-MNIST (60,000 images, standardised, with its default augmentation
settings), for each kind in turn, repeated ``--rounds`` times with the kinds
interleaved so that load from other processes falls on all of them alike.
Prints a markdown table with, per kind, the best and median wall time of an
epoch, the process CPU time of an epoch (less sensitive to other processes),
the time spent in the augmenter alone, and the ratio to an epoch without
augmentation. The issue's budget is a ratio of at most 2.

BLAS runs on ``--threads`` threads (default 1: on a shared two-core machine a
second BLAS thread mostly waits for the other processes and makes epochs
several times slower).

Example::

    python bench/augment_speed.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from accuracy import load_dataset, scale
from threadpoolctl import threadpool_limits

from nn.model import MLP
from nn.train import TrainConfig, train
from tasks.fitting.augment import default_augment, make_augmenter

KINDS = ("none", "shift", "affine", "elastic")


class _Timed:
    """Wraps an augmenter and adds up the wall time spent in it."""

    def __init__(self, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> None:
        self.augment = augment
        self.seconds = 0.0

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        start = time.perf_counter()
        out = self.augment(X, rng)
        self.seconds += time.perf_counter() - start
        return out


def one_epoch(kind: str, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, seconds in the augmenter) of one epoch with ``kind``."""
    rng = np.random.default_rng(seed)
    model = MLP.create((784, 300, 10), rng=rng)
    augment = make_augmenter(default_augment("fashion-mnist", kind))
    timed = _Timed(augment) if augment is not None else None
    config = TrainConfig(epochs=1, batch_size=128, lr=0.05, nesterov=True)
    cpu, wall = time.process_time(), time.perf_counter()
    train(model, X, y, config, rng=rng, augment=timed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, timed.seconds if timed is not None else 0.0


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args(argv)
    X_train, y_train, X_test, _ = load_dataset("fashion-mnist")
    X, _ = scale(X_train, X_test, standardize=True)
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in KINDS}
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for round_ in range(args.rounds):
            for kind in KINDS:
                results[kind].append(one_epoch(kind, X, y_train, seed=round_))
    base_wall = min(r[0] for r in results["none"])
    base_cpu = min(r[1] for r in results["none"])
    print(
        "| augment | epoch wall, best (s) | epoch wall, median (s) | epoch CPU, best (s) "
        "| in augmenter (s) | ratio wall | ratio CPU |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in KINDS:
        walls = [r[0] for r in results[kind]]
        cpus = [r[1] for r in results[kind]]
        aug = min(r[2] for r in results[kind])
        print(
            f"| {kind} | {min(walls):.2f} | {statistics.median(walls):.2f} | {min(cpus):.2f} "
            f"| {aug:.2f} | {min(walls) / base_wall:.2f} | {min(cpus) / base_cpu:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
