"""Training epochs with the thread policy of ``mnist-flow train``, against one thread and PyTorch.

On the complete Fashion-MNIST (60,000 images, standardised), 784-300-10, batch
128, momentum 0.9, learning rate 0.05, each case trains ``--epochs`` epochs through
:func:`tasks.fitting.fit.fit`, the function ``mnist-flow train`` runs:

- ``plain auto``: ``--augment none --schedule constant --weight-decay 0`` with the
  default ``--threads`` (auto: every core, one while that is faster);
- ``plain 1``: the same with ``--threads 1`` (what the final training used before);
- ``elastic auto``: elastic distortions, prepared one minibatch ahead in a thread;
- ``elastic 1, inline``: elastic distortions in the training thread, one BLAS thread
  (the order of work before prefetching);
- ``floor``: only the work that no numpy training step can leave out (gathering
  each minibatch's rows, the two products of the 784-300 layer, the momentum
  update of its weights), on every core: how close to PyTorch any step made of
  numpy calls can come on this machine;
- ``torch``: PyTorch's CPU build with its default threads, the same network and
  settings (``torch.nn.Linear`` layers, ``torch.optim.SGD``), when it is installed
  (``pip install torch==2.13.0`` in the venv; it is not a dependency).

The cases are interleaved, ``--rounds`` times (each round starting with the next
case, so that none always follows PyTorch, whose threads spin on after it), first
on the machine as it is
(``idle``), then with another process spinning on one core (``busy``: the case in
which OpenBLAS threads that spin-wait for each other used to make two threads
several times slower than one). It prints the mean seconds per epoch (the first
epoch included: it holds the calibration of ``auto``), best and median over the
rounds, the ratios that the targets are about, and the load average. It also
prints the least that ``elastic auto / plain auto`` can be on this machine: the
one-thread elastic epoch (all its work) divided by the cores, as if every core
were kept busy with no overhead, against the plain epoch.

``--accuracy`` instead trains 5 epochs on the first 20,000 images with 1 and 2
threads and auto, for seeds 0 and 1, and prints the test accuracy of each: the
thread count changes the rounding of the sums, which training amplifies.

Example::

    python bench/thread_speed.py --rounds 3 --epochs 2
    python bench/thread_speed.py --accuracy
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
from accuracy import load_dataset, scale

from nn.train import EpochRecord, TrainConfig
from tasks.fitting.augment import default_augment, make_augmenter
from tasks.fitting.fit import fit
from tasks.fitting.threads import available_cores

LR, MOMENTUM, BATCH = 0.05, 0.9, 128


def ours(X: np.ndarray, y: np.ndarray, epochs: int, augment: str, threads: int | str) -> float:
    """Mean seconds per epoch of :func:`fit` with ``augment`` and ``threads``."""
    splits = SimpleNamespace(X_train=X, y_train=y, X_val=None, y_val=None)
    config = TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR, momentum=MOMENTUM)
    records: list[EpochRecord] = []
    augmenter = make_augmenter(default_augment("fashion-mnist", augment))
    if threads == "inline":  # the augmentation in the training thread, one BLAS thread
        from threadpoolctl import threadpool_limits

        from nn.model import MLP
        from nn.train import train

        rng = np.random.default_rng(0)
        model = MLP.create((784, 300, 10), rng=rng)
        with threadpool_limits(1, user_api="blas"):
            train(model, X, y, config, rng=rng, callback=records.append, augment=augmenter)
    else:
        fit(
            splits, [300], 10, config, rng=np.random.default_rng(0),
            callback=records.append, augment=augmenter, threads=threads,
        )  # fmt: skip
    return statistics.mean(r.seconds for r in records)


def accuracy(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> None:
    """Test accuracy after 5 epochs on 20,000 images with 1, 2 and auto threads, seeds 0 and 1."""
    splits = SimpleNamespace(X_train=X[:20000], y_train=y[:20000], X_val=None, y_val=None)
    config = TrainConfig(epochs=5, batch_size=BATCH, lr=LR, momentum=MOMENTUM)
    for seed in (0, 1):
        shown = []
        for threads in (1, 2, "auto"):
            rng = np.random.default_rng(seed)
            model, _ = fit(splits, [300], 10, config, rng=rng, threads=threads)
            shown.append(f"threads {threads}: {100 * model.evaluate(X_test, y_test)[1]:.2f} %")
        print(f"seed {seed}: " + ", ".join(shown))


def floor_epochs(X: np.ndarray, epochs: int) -> float:
    """Mean seconds per epoch of the work no numpy step can leave out, on every core.

    Per minibatch: gathering its rows (``X[order[i:i + 128]]``), the two large
    products ``X W`` and ``X^T D`` of the 784-300 layer and the momentum update of
    ``W`` (three passes); nothing else (no biases, activations, second layer, loss).
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((X.shape[1], 300)) * 0.05).astype(np.float32)
    v, grad = np.zeros_like(w), np.empty_like(w)
    delta = (rng.standard_normal((BATCH, 300)) * 1e-3).astype(np.float32)
    xb, z = np.empty((BATCH, X.shape[1]), np.float32), np.empty((BATCH, 300), np.float32)
    seconds = []
    with threadpool_limits(available_cores(), user_api="blas"):
        for _ in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(X.shape[0])
            for i in range(0, X.shape[0] - BATCH + 1, BATCH):
                np.take(X, order[i : i + BATCH], axis=0, out=xb)
                np.matmul(xb, w, out=z)
                np.matmul(xb.T, delta, out=grad)
                np.multiply(v, MOMENTUM, out=v)
                np.subtract(v, grad, out=v)
                np.add(w, v, out=w)
            seconds.append(time.perf_counter() - start)
    return statistics.mean(seconds)


def torch_epochs(X: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """Mean seconds per epoch of the same training in PyTorch (default threads)."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 10))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(yt))
        for i in range(0, len(yt), BATCH):
            rows = order[i : i + BATCH]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[rows]), yt[rows])
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return statistics.mean(seconds)


def _spin(parent: int) -> None:  # pragma: no cover - runs in a child process
    """Keep one core busy until the benchmark ends (or its process is gone)."""
    while os.getppid() == parent:
        for _ in range(100_000):
            pass


@contextmanager
def busy_core(on: bool):
    """Another process spinning on one core inside the block (when ``on``)."""
    if not on:
        yield
        return
    process = multiprocessing.get_context("spawn").Process(
        target=_spin, args=(os.getpid(),), daemon=True
    )
    process.start()
    try:
        time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--conditions", nargs="+", default=["idle", "busy"],
                        choices=["idle", "busy"])  # fmt: skip
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--accuracy", action="store_true", help="test accuracy per thread count")
    args = parser.parse_args(argv)
    X_train, y, X_test, y_test = load_dataset("fashion-mnist")
    X, X_test = scale(X_train, X_test, standardize=True)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if args.accuracy:
        accuracy(X, y, X_test, y_test)
        return 0
    cases: dict[str, Callable[[], float]] = {
        "plain auto": lambda: ours(X, y, args.epochs, "none", "auto"),
        "plain 1": lambda: ours(X, y, args.epochs, "none", 1),
        "elastic auto": lambda: ours(X, y, args.epochs, "elastic", "auto"),
        "elastic 1, inline": lambda: ours(X, y, args.epochs, "elastic", "inline"),
        "floor": lambda: floor_epochs(X, args.epochs),
    }
    try:
        if args.no_torch:
            raise ImportError
        import torch

        cases["torch"] = lambda: torch_epochs(X, y, args.epochs)
        torch_text = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_text = "no PyTorch (not installed, or --no-torch)"
    print(f"{os.cpu_count()} CPUs; {torch_text}; {args.rounds} rounds x {args.epochs} epochs")
    for condition in args.conditions:
        times: dict[str, list[float]] = {name: [] for name in cases}
        load = [os.getloadavg()[0]]
        with busy_core(condition == "busy"):
            names = list(cases)
            for round_ in range(args.rounds):  # each round starts with another case
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    times[name].append(cases[name]())
        load.append(os.getloadavg()[0])
        print(f"\n## {condition} (load average {load[0]:.1f} before, {load[1]:.1f} after)\n")
        print("| case | s/epoch best | s/epoch median | per round |")
        print("| --- | ---: | ---: | --- |")
        for name, values in times.items():
            rounds = ", ".join(f"{v:.2f}" for v in values)
            print(f"| {name} | {min(values):.2f} | {statistics.median(values):.2f} | {rounds} |")
        med = {name: statistics.median(values) for name, values in times.items()}
        print(f"\nplain auto / plain 1: {med['plain auto'] / med['plain 1']:.2f}")
        print(f"elastic auto / plain auto: {med['elastic auto'] / med['plain auto']:.2f}")
        print(f"elastic 1 inline / plain 1: {med['elastic 1, inline'] / med['plain 1']:.2f}")
        # All the work of an elastic epoch, shared perfectly by every core, at best:
        cores = available_cores()
        bound = med["elastic 1, inline"] / cores / med["plain auto"]
        print(f"  lower bound of elastic auto / plain auto on {cores} cores: {bound:.2f}")
        if "torch" in med:
            print(f"plain auto / torch: {med['plain auto'] / med['torch']:.2f}")
            per_round = [a / b for a, b in zip(times["plain auto"], times["torch"], strict=True)]
            print("  per round: " + ", ".join(f"{r:.2f}" for r in per_round))
            print(f"floor / torch: {med['floor'] / med['torch']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
