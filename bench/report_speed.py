"""The report step with and without the plot cache: is keeping the plots worth it?

Writes a report of eight trials, an 18-epoch history, a confusion matrix and the 36
misclassified MNIST test images a run shows (a nearest-centroid classifier on 1,000 of
them) with :func:`tasks.outputs.report.write_report_files`: *drawn* with no plot cache,
*cached* from a plot cache that an identical earlier report filled. Prints the best and
median seconds of ``--repeat`` reports of each kind, then of each plot drawn alone (the
figure, its PNG file and its embedded image: :func:`tasks.outputs.figures.render`), then
the seven plots drawn and saved by matplotlib's ``savefig`` (laid out twice) and by
:func:`tasks.outputs.plots.figure_to_png` (laid out once), in turn.

Usage: ``python bench/report_speed.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tasks.data.idx import read_idx  # noqa: E402
from tasks.outputs.figures import build_plots, render  # noqa: E402
from tasks.outputs.report import write_report_files  # noqa: E402
from tasks.scoring.metrics import class_names, evaluation_metrics, select_misclassified  # noqa: E402

SHARED = Path(os.environ.get("MNIST_FLOW_SHARED_DATA", REPO.parent / "shared" / "data"))


def report_inputs() -> tuple[dict, dict]:
    """(metrics, keyword arguments) of a report with every plot."""
    folder = SHARED / "mnist"
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")[:2000].astype(np.float32) / 255
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:2000].astype(np.int64)
    flat = images.reshape(len(images), -1)
    centroids = np.stack([flat[:1000][labels[:1000] == c].mean(axis=0) for c in range(10)])
    z = -((flat[1000:, None, :] - centroids[None]) ** 2).sum(axis=2) / 8.0
    proba = np.exp(z - z.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    names = class_names("mnist", 10)
    metrics = evaluation_metrics(labels[1000:], proba, names)
    errors = select_misclassified(images[1000:], labels[1000:], proba)  # as many as a run
    trials = [
        {
            "trial": i, "seed": i, "status": "ok", "error": None, "epochs": 18, "rung": 0,
            "params": {"lr": 0.01 * (i + 1), "batch_size": 64, "momentum": 0.9},
            "val_accuracy": [0.9 + 0.001 * (i + e) for e in range(18)],
            "val_loss": [0.3 - 0.005 * e for e in range(18)],
            "best_val_accuracy": 0.9 + 0.001 * (i + 17), "seconds": 10.0, "cached": False,
        }
        for i in range(8)
    ]  # fmt: skip
    history = [
        {"epoch": e, "train_loss": 0.5 / e, "train_accuracy": 0.9, "val_loss": 0.5 / e,
         "val_accuracy": 0.9, "lr": 0.1, "seconds": 2.0}
        for e in range(1, 19)
    ]  # fmt: skip
    kwargs = {
        "images_for_errors": errors.images, "y_true": errors.y_true, "y_pred": errors.y_pred,
        "class_names": names, "trials": trials, "history": history,
    }  # fmt: skip
    return metrics, kwargs


def timed(repeat: int, cache: Path | None, metrics: dict, kwargs: dict) -> list[float]:
    """Seconds of ``repeat`` reports, each into a new folder."""
    seconds = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(repeat):
            start = time.perf_counter()
            write_report_files(f"{out}/{i}", metrics, plot_cache=cache, **kwargs)
            seconds.append(time.perf_counter() - start)
    return seconds


def per_plot(repeat: int, metrics: dict, kwargs: dict) -> dict[str, list[float]]:
    """Seconds of ``repeat`` renders of each of the report's plots, without a cache."""
    errors = (kwargs["images_for_errors"], kwargs["y_true"], kwargs["y_pred"])
    specs = build_plots(metrics, kwargs["class_names"], kwargs["history"], errors, kwargs["trials"])
    seconds: dict[str, list[float]] = {}
    for name, spec in specs.items():
        for _ in range(repeat):
            start = time.perf_counter()
            render(spec, None, name)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
    return seconds


def layout_passes(repeat: int, metrics: dict, kwargs: dict) -> dict[str, list[float]]:
    """Seconds to draw and save the seven plots with ``savefig`` and with ``figure_to_png``,
    alternating, ``repeat`` rounds."""
    import io

    from tasks.outputs.figures import FILE_DPI
    from tasks.outputs.plots import figure_to_png

    def with_savefig(fig) -> bytes:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FILE_DPI)
        return buffer.getvalue()

    errors = (kwargs["images_for_errors"], kwargs["y_true"], kwargs["y_pred"])
    specs = build_plots(metrics, kwargs["class_names"], kwargs["history"], errors, kwargs["trials"])
    ways = {"savefig": with_savefig, "figure_to_png": lambda fig: figure_to_png(fig, FILE_DPI)}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, save in ways.items():
            start = time.perf_counter()
            for spec in specs.values():
                save(spec.draw())
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    metrics, kwargs = report_inputs()
    with tempfile.TemporaryDirectory() as cache:
        timed(1, Path(cache), metrics, kwargs)  # fills the cache (and imports matplotlib)
        cached = timed(args.repeat, Path(cache), metrics, kwargs)
        drawn = timed(args.repeat, None, metrics, kwargs)
    print(f"load average {os.getloadavg()[0]:.1f}; seconds per report, best / median:")
    for name, seconds in (("drawn", drawn), ("cached", cached)):
        print(f"  {name:<7} {min(seconds):7.3f} / {statistics.median(seconds):7.3f}")
    print("each plot drawn, best / median:")
    for name, seconds in per_plot(args.repeat, metrics, kwargs).items():
        print(f"  {name:<14} {min(seconds):7.3f} / {statistics.median(seconds):7.3f}")
    print("the seven plots drawn and saved, best / median:")
    for name, seconds in layout_passes(args.repeat, metrics, kwargs).items():
        print(f"  {name:<14} {min(seconds):7.3f} / {statistics.median(seconds):7.3f}")


if __name__ == "__main__":
    main()
