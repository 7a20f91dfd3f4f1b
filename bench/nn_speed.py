"""Training speed of the from-scratch 784-300-10 network against scikit-learn's MLPClassifier.

Trains both on the complete Fashion-MNIST (60,000 training images, pixels
scaled to [0, 1] and standardised with the training set's mean and standard
deviation, float32) with the same settings: one hidden layer of 300 ReLU units,
SGD with classical momentum 0.9, constant learning rate 0.02 (with standardised
inputs; 0.1 overshoots and its test accuracy wanders between 86% and 88%),
minibatches of 128, no weight decay, one reshuffle per epoch (``partial_fit`` once per epoch on the
reshuffled data for scikit-learn). Prints per-epoch wall times, samples per
second, achieved GFLOP/s (``4 x parameters x samples`` per epoch: 2 flops per
multiply-add forward, about twice that backward) against the float32 matmul peak
measured at run time with a large ``np.matmul`` loop, and the test accuracy of
both.

Targets: our epoch >= 2x faster than MLPClassifier's, >= 45% of the measured
matmul peak, the last epoch no slower than 1.1x the second (no slowdown from
subnormal floats), and >= 87.5% test accuracy after 10 epochs.

Besides wall-clock seconds per epoch it reports the process CPU seconds per
epoch (all threads), which the other processes of a shared machine disturb far
less, and the "matmul floor": the time of the five matrix products of one
epoch alone (batch 128), i.e. what no implementation of this training step
with numpy's BLAS can beat; ours minus the floor is our per-batch overhead.

``--threads`` caps the BLAS threads of both networks and of the peak and floor
measurements alike (via threadpoolctl). It defaults to 1, the default of
``mnist-flow train`` (``tasks.fitting.fit.BLAS_THREADS``); 0 leaves the library's
own setting (all cores). On a machine that other processes keep busy, a
multithreaded BLAS whose threads wait for a core spins, and both networks then run
several times slower with figures that mean little (the header prints the load
average and the thread count in effect, to judge). ``bench/thread_speed.py``
compares 1 and 2 threads for the trainer itself.

Example::

    python bench/nn_speed.py --epochs 10
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from nn.model import MLP  # noqa: E402
from nn.train import EpochRecord, TrainConfig, train  # noqa: E402


def read_images_labels(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 784) and int64 labels (n,) of ``split`` ("train" or "t10k")."""
    img_path = data_dir / f"{split}-images-idx3-ubyte.gz"
    lab_path = data_dir / f"{split}-labels-idx1-ubyte.gz"
    try:
        from tasks.data.idx import read_idx

        images, labels = read_idx(img_path), read_idx(lab_path)
    except ImportError:
        with gzip.open(img_path, "rb") as fh:
            images = np.frombuffer(fh.read(), dtype=np.uint8, offset=16)
        with gzip.open(lab_path, "rb") as fh:
            labels = np.frombuffer(fh.read(), dtype=np.uint8, offset=8)
    return images.reshape(len(labels), -1), labels.astype(np.int64)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of ``size x size`` matrix products over ``repeats`` runs."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # warm up
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2.0 * size**3 / best / 1e9


def matmul_floor_seconds(
    n: int, batch_size: int, sizes=(784, 300, 10), repeats: int = 3
) -> tuple[float, float]:
    """Best wall and CPU seconds of the five matrix products of one epoch of ``n`` rows.

    Per minibatch: ``X W_0``, ``H W_1`` forward; ``H^T D_1``, ``D_1 W_1^T``, ``X^T D_0``
    backward (the gradient with respect to ``X`` is not formed).
    """
    rng = np.random.default_rng(0)
    d, h, k = sizes
    x = rng.standard_normal((batch_size, d), dtype=np.float32)
    w0 = rng.standard_normal((d, h), dtype=np.float32)
    w1 = rng.standard_normal((h, k), dtype=np.float32)
    a, d0 = np.empty((batch_size, h), np.float32), np.empty((batch_size, h), np.float32)
    z = np.empty((batch_size, k), np.float32)
    g0, g1 = np.empty_like(w0), np.empty_like(w1)
    batches = -(-n // batch_size)

    def epoch() -> None:
        for _ in range(batches):
            np.matmul(x, w0, out=a)
            np.matmul(a, w1, out=z)
            np.matmul(a.T, z, out=g1)
            np.matmul(z, w1.T, out=d0)
            np.matmul(x.T, d0, out=g0)

    epoch()  # warm up
    wall, cpu = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        wall.append(_timed(epoch))
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def blas_threads() -> str:
    """The BLAS thread counts in effect, e.g. ``"openblas 2"``."""
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in infos) or "unknown"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_ours(X, y, Xt, yt, args) -> tuple[list[float], list[float], float]:
    """Wall and CPU seconds per epoch, and test accuracy, of the from-scratch network."""
    rng = np.random.default_rng(args.seed)
    model = MLP.create((784, 300, 10), init="he", rng=rng)
    records: list[EpochRecord] = []
    cpu = [time.process_time()]

    def on_epoch(record: EpochRecord) -> None:
        cpu.append(time.process_time())
        records.append(record)

    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum
    )
    train(model, X, y, cfg, rng=rng, callback=on_epoch)
    cpu_times = [b - a for a, b in itertools.pairwise(cpu)]
    return [r.seconds for r in records], cpu_times, model.evaluate(Xt, yt)[1]


def run_sklearn(X, y, Xt, yt, args) -> tuple[list[float], list[float], float]:
    """Wall and CPU seconds per epoch, and test accuracy, of MLPClassifier (same settings)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(300,),
        activation="relu",
        solver="sgd",
        batch_size=args.batch_size,
        learning_rate="constant",
        learning_rate_init=args.lr,
        momentum=args.momentum,
        nesterovs_momentum=False,
        alpha=0.0,
        shuffle=False,  # we reshuffle once per epoch below, as our trainer does
        random_state=args.seed,
    )
    rng = np.random.default_rng(args.seed)
    classes = np.arange(10)
    times, cpu_times = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(args.epochs):
            t0, c0 = time.perf_counter(), time.process_time()
            order = rng.permutation(len(y))
            clf.partial_fit(X[order], y[order], classes=classes)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    return times, cpu_times, float(np.mean(clf.predict(Xt) == yt))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data" / "fashion-mnist",
        help="folder of the Fashion-MNIST gzip IDX files (default: ../shared/data/fashion-mnist)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="cap on BLAS threads (default 1, as mnist-flow train; 0: the library's setting)",
    )
    parser.add_argument("--no-sklearn", action="store_true", help="time only our network")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the report compares the second and last epochs)")

    Xu, y = read_images_labels(args.data_dir, "train")
    Xtu, yt = read_images_labels(args.data_dir, "t10k")
    X = Xu.astype(np.float32) / np.float32(255.0)
    mean, std = float(X.mean()), float(X.std())
    X = (X - np.float32(mean)) / np.float32(std)
    Xt = ((Xtu.astype(np.float32) / np.float32(255.0)) - np.float32(mean)) / np.float32(std)

    limit = contextlib.nullcontext()
    if args.threads > 0:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(args.threads)
    n = X.shape[0]
    load_before = os.getloadavg()[0]
    with limit:
        threads = blas_threads()
        peak = matmul_peak_gflops()
        floor = matmul_floor_seconds(n, args.batch_size)
        ours, ours_cpu, acc_ours = run_ours(X, y, Xt, yt, args)
        theirs = theirs_cpu = acc_theirs = None
        if not args.no_sklearn:
            theirs, theirs_cpu, acc_theirs = run_sklearn(X, y, Xt, yt, args)
        peak = max(peak, matmul_peak_gflops())  # best of before and after: the load varies
        again = matmul_floor_seconds(n, args.batch_size)
        floor_wall, floor_cpu = min(floor[0], again[0]), min(floor[1], again[1])
    load_after = os.getloadavg()[0]

    n_params = 784 * 300 + 300 * 10 + 300 + 10
    flops_per_epoch = 4.0 * n_params * n
    print(f"Fashion-MNIST: {n} training / {len(yt)} test images, 784-300-10 ({n_params} params)")
    print(
        f"batch {args.batch_size}, lr {args.lr}, momentum {args.momentum}, {args.epochs} epochs; "
        f"--threads {args.threads} ({'library default' if args.threads == 0 else 'cap'}): "
        f"BLAS threads {threads}, {os.cpu_count()} CPUs"
    )
    print(
        f"load average {load_before:.1f} before, {load_after:.1f} after "
        "(wall times are noisy on a shared machine; CPU times less so)"
    )
    if args.threads != 1 and max(load_before, load_after) > 0.5 * (os.cpu_count() or 1):
        print(
            "warning: the machine is busy; multithreaded BLAS figures are unreliable here "
            "(rerun with --threads 1)"
        )
    print(f"measured float32 matmul peak: {peak:.1f} GFLOP/s (best 2048^3 product, before/after)")
    print(
        f"matmul floor (the 5 products of one epoch alone): {floor_wall:.3f} s wall, "
        f"{floor_cpu:.3f} s CPU"
    )
    rows = [("ours", ours, ours_cpu, acc_ours)]
    if theirs is not None:
        rows.append(("sklearn MLPClassifier", theirs, theirs_cpu, acc_theirs))
    for name, times, cpu_times, acc in rows:
        med, cmed = statistics.median(times), statistics.median(cpu_times)
        gflops = flops_per_epoch / med / 1e9
        print(f"\n[{name}]")
        print("  wall seconds per epoch: " + ", ".join(f"{t:.3f}" for t in times))
        print("  CPU seconds per epoch:  " + ", ".join(f"{t:.3f}" for t in cpu_times))
        print(f"  median epoch: {med:.3f} s wall, {cmed:.3f} s CPU (all threads)")
        print(
            f"  samples/s: {n / med:,.0f}   over the matmul floor: {med / floor_wall:.2f}x wall, "
            f"{cmed / floor_cpu:.2f}x CPU"
        )
        print(f"  achieved: {gflops:.1f} GFLOP/s = {100 * gflops / peak:.0f}% of measured peak")
        print(
            f"  first / second / last epoch wall: {times[0]:.3f} / {times[1]:.3f} / "
            f"{times[-1]:.3f} s; CPU: {cpu_times[0]:.3f} / {cpu_times[1]:.3f} / "
            f"{cpu_times[-1]:.3f} s"
        )
        print(f"  test accuracy: {100 * acc:.2f}%")

    med_ours = statistics.median(ours)
    pct_peak = 100 * flops_per_epoch / med_ours / 1e9 / peak
    print("\n[targets]")
    if theirs is not None:
        ratio = statistics.median(theirs) / med_ours
        cpu_ratio = statistics.median(theirs_cpu) / statistics.median(ours_cpu)
        print(f"  sklearn / ours wall per epoch: {ratio:.2f}x (target >= 2): {_ok(ratio >= 2)}")
        print(f"  sklearn / ours CPU per epoch: {cpu_ratio:.2f}x")
    print(f"  share of matmul peak: {pct_peak:.0f}% (target >= 45%): {_ok(pct_peak >= 45)}")
    slow = ours[-1] / ours[1]
    print(f"  last / second epoch: {slow:.2f} (target <= 1.1): {_ok(slow <= 1.1)}")
    if args.epochs >= 10:
        print(f"  test accuracy {100 * acc_ours:.2f}% (target >= 87.5%): {_ok(acc_ours >= 0.875)}")
    return 0


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
