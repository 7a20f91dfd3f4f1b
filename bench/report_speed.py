"""Cost of the report: time to draw, write and shrink each plot, and the sizes produced.

Draws every plot of a run report from realistic inputs and prints a markdown table:
plot, seconds to build the Figure, seconds to render the file PNG (100 dpi) and
its size, seconds to make the embedded PNG and its base64 size (the artifact
budget is ``MAX_EMBED_CHARS`` per image). Inputs: the real Fashion-MNIST test set
(10,000 images, ``../shared/data`` beside the checkout or ``$MNIST_FLOW_SHARED_DATA``)
classified by nearest class centroid (a cheap, imperfect model: many mistakes to
show), a 15-epoch history and ``--trials`` search trials (10% diverged, 5% failed)
with 15 epochs each. No Prefect: the markdown artifact itself is not published.

Example::

    python bench/report_speed.py --trials 40
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.data.idx import read_idx
from tasks.outputs import plots
from tasks.outputs.embed import MAX_EMBED_CHARS, compact_png
from tasks.outputs.figures import FILE_DPI, build_plots
from tasks.scoring.metrics import class_names, evaluation_metrics, select_misclassified

DATA = Path(
    os.environ.get(
        "MNIST_FLOW_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


def centroid_model(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test images in [0, 1], labels, and nearest-centroid probabilities (centroids from train)."""
    train_x = read_idx(data / "train-images-idx3-ubyte.gz")[:20000].reshape(20000, -1) / 255
    train_y = read_idx(data / "train-labels-idx1-ubyte.gz")[:20000]
    test = read_idx(data / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255
    labels = read_idx(data / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    centroids = np.stack([train_x[train_y == c].mean(axis=0) for c in range(10)]).astype(np.float32)
    flat = test.reshape(len(test), -1)
    d2 = (flat**2).sum(1)[:, None] - 2 * flat @ centroids.T + (centroids**2).sum(1)[None]
    z = -d2 / 8.0
    proba = np.exp(z - z.max(axis=1, keepdims=True))
    return test, labels, proba / proba.sum(axis=1, keepdims=True)


def fake_trials(n: int, rng: np.random.Generator) -> list[dict]:
    """Search trials shaped like ``TrialResult.to_dict()``."""
    trials = []
    for i in range(n):
        status = "diverged" if rng.random() < 0.1 else "failed" if rng.random() < 0.05 else "ok"
        epochs = 15 if status == "ok" else int(rng.integers(0, 4))
        acc = list(0.9 - 0.2 * np.exp(-np.arange(1, epochs + 1) / 3) + rng.normal(0, 0.005, epochs))
        params = {
            "lr": float(10 ** rng.uniform(-3, 0.5)),
            "batch_size": int(rng.choice([32, 64, 128, 256])),
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 1e-4,
            "schedule": "cosine",
        }
        trials.append(
            {
                "trial": i,
                "params": params,
                "seed": i,
                "status": status,
                "error": None if status == "ok" else "loss became non-finite",
                "val_accuracy": acc,
                "val_loss": [1.0 - a for a in acc],
                "best_val_accuracy": max(acc) if status == "ok" else None,
                "epochs": epochs,
                "seconds": 30.0,
                "cached": False,
            }
        )
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="number of search trials")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images, labels, proba = centroid_model(DATA / "fashion-mnist")
    names = class_names("fashion-mnist", 10)
    metrics = evaluation_metrics(labels, proba, names)
    errors = select_misclassified(images, labels, proba, limit=36)
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_accuracy": 1 - 0.3 / e,
            "val_loss": 1.1 / e,
            "val_accuracy": 1 - 0.32 / e,
        }
        for e in range(1, 16)
    ]
    builders = build_plots(
        metrics,
        names,
        history,
        (errors.images, errors.y_true, errors.y_pred),
        fake_trials(args.trials, rng),
    )
    print(f"test accuracy of the centroid model: {metrics['test_accuracy']:.4f}")
    print(f"embedded budget: {MAX_EMBED_CHARS} base64 chars per image\n")
    print("| plot | build s | file s | file KB | embed s | embed base64 KB |")
    print("|---|---|---|---|---|---|")
    for name, spec in builders.items():
        t0 = time.perf_counter()
        fig = spec.draw()
        t1 = time.perf_counter()
        png = plots.figure_to_png(fig, FILE_DPI)
        t2 = time.perf_counter()
        small = compact_png(fig)
        t3 = time.perf_counter()
        embedded = len(base64.b64encode(small)) / 1000 if small else float("nan")
        print(
            f"| {name} | {t1 - t0:.2f} | {t2 - t1:.2f} | {len(png) / 1000:.0f} | "
            f"{t3 - t2:.2f} | {embedded:.1f} |"
        )


if __name__ == "__main__":
    main()
