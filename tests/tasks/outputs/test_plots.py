"""Plots: each returns a Figure with the expected axes and labels and renders a valid PNG."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tasks.data.idx import read_idx
from tasks.outputs.plots import (
    MONTAGE_GAP_COLUMNS,
    MONTAGE_TITLE_ROWS,
    PlotError,
    figure_to_png,
    latest_per_trial,
    plot_confusion,
    plot_curves,
    plot_misclassified,
    plot_search,
    plot_trial_curves,
)
from tasks.scoring.metrics import FASHION_MNIST_CLASSES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DIGITS = [str(i) for i in range(10)]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_png(fig: Figure, dpi: int = 50) -> None:
    width, height = png_size(figure_to_png(fig, dpi))
    w_in, h_in = fig.get_size_inches()
    assert (width, height) == (round(w_in * dpi), round(h_in * dpi))


@pytest.fixture(scope="module")
def fashion_test(fashion_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 200 real Fashion-MNIST test images in [0, 1] and their labels."""
    images = read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")[:200]
    labels = read_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz")[:200]
    return images.astype(np.float32) / 255, labels.astype(np.int64)


def history(epochs: int, with_val: bool = True) -> list[dict]:
    records = []
    for e in range(1, epochs + 1):
        val = (0.6 / e, 0.8 + 0.01 * e) if with_val else (None, None)
        records.append(
            {
                "epoch": e,
                "train_loss": 0.5 / e,
                "train_accuracy": 0.82 + 0.01 * e,
                "val_loss": val[0],
                "val_accuracy": val[1],
                "lr": 0.1,
                "seconds": 1.0,
            }
        )
    return records


def trial(i: int, lr: float, batch: int, status: str = "ok", epochs: int = 5) -> dict:
    acc = list(np.linspace(0.85, 0.9 + 0.005 * i, epochs)) if status != "failed" else []
    loss = list(np.linspace(0.5, 0.3, epochs)) if status != "failed" else []
    if status == "diverged":
        acc, loss = acc[:2], [*loss[:1], float("nan")]
    return {
        "trial": i,
        "params": {
            "lr": lr,
            "batch_size": batch,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 1e-4,
            "schedule": "cosine",
            "decay": 0.0,
            "hidden": [300],
        },
        "seed": i,
        "status": status,
        "error": None if status == "ok" else "loss became NaN",
        "val_accuracy": acc,
        "val_loss": loss,
        "best_val_accuracy": max(acc) if status == "ok" else None,
        "epochs": len(acc),
        "seconds": 2.5,
        "cached": False,
    }


@pytest.fixture(scope="module")
def trials() -> list[dict]:
    return [
        trial(0, 0.01, 64),
        trial(1, 0.1, 128),
        trial(2, 3.0, 64, status="diverged"),
        trial(3, 0.003, 32),
        trial(4, 0.05, 128, status="failed"),
        trial(5, 0.2, 32),
    ]


def test_curves_train_and_validation() -> None:
    fig = plot_curves(history(6))
    loss, acc = fig.axes
    assert loss.get_xlabel() == "epoch" and "loss" in loss.get_ylabel()
    assert "accuracy" in acc.get_ylabel()
    assert [line.get_label() for line in loss.lines] == ["train", "validation"]
    np.testing.assert_allclose(acc.lines[1].get_ydata(), [81, 82, 83, 84, 85, 86])
    assert_png(fig)


def test_curves_without_validation() -> None:
    fig = plot_curves(history(3, with_val=False))
    assert [[line.get_label() for line in ax.lines] for ax in fig.axes] == [["train"], ["train"]]
    assert_png(fig)


def test_curves_reject_empty_history() -> None:
    with pytest.raises(PlotError, match="history is empty"):
        plot_curves([])


def test_confusion_has_class_names_and_counts() -> None:
    cm = np.diag(np.full(10, 90)) + 1
    fig = plot_confusion(cm, FASHION_MNIST_CLASSES)
    (ax,) = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert [t.get_text() for t in ax.get_xticklabels()] == FASHION_MNIST_CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == FASHION_MNIST_CLASSES
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    cells = [t.get_text() for t in ax.texts]
    assert len(cells) == 100 and cells[0] == "91" and cells[1] == "1"
    assert "910/1000 correct, 91.00%" in ax.get_title()
    assert_png(fig)


def test_confusion_any_number_of_classes() -> None:
    fig = plot_confusion([[3, 1, 0], [0, 2, 2], [0, 0, 0]], ["cat", "dog", "owl"])
    assert_png(fig)
    with pytest.raises(PlotError, match=r"shape \(2, 2\)"):
        plot_confusion(np.ones((3, 3)), ["a", "b"])


def montage_cells(fig) -> tuple[tuple[int, int], list[tuple[str, np.ndarray]]]:
    """The grid (rows, columns) of a misclassified figure and its cells (title, image)."""
    (ax,) = fig.axes
    (image,) = ax.images
    montage = np.ma.filled(image.get_array(), np.nan)
    cell_h, cell_w = 28 + MONTAGE_TITLE_ROWS, 28 + MONTAGE_GAP_COLUMNS
    grid = (montage.shape[0] // cell_h, montage.shape[1] // cell_w)
    assert montage.shape == (grid[0] * cell_h, grid[1] * cell_w)
    cells = []
    for k, text in enumerate(ax.texts):
        top, left = (k // grid[1]) * cell_h + MONTAGE_TITLE_ROWS, (k % grid[1]) * cell_w
        assert text.get_position() == (left + 14, top - 1)  # centred above its image
        cells.append((text.get_text(), montage[top : top + 28, left : left + 28]))
    return grid, cells


def test_misclassified_grid_on_real_images(fashion_test) -> None:
    images, labels = fashion_test
    y_pred = labels.copy()
    y_pred[::4] = (labels[::4] + 1) % 10  # 50 wrong predictions
    fig = plot_misclassified(images, labels, y_pred, FASHION_MNIST_CLASSES, max_images=20)
    grid, cells = montage_cells(fig)
    assert len(cells) == 20  # capped at max_images
    assert grid == (4, 5)  # 5 x 4 grid, no empty cells
    first = cells[0][0]
    assert (
        first == f"true {FASHION_MNIST_CLASSES[labels[0]]}\npred {FASHION_MNIST_CLASSES[y_pred[0]]}"
    )
    np.testing.assert_allclose(cells[1][1], images[4])
    assert_png(fig)


def test_misclassified_flat_images_and_partial_grid(fashion_test) -> None:
    images, labels = fashion_test
    y_pred = labels.copy()
    y_pred[:7] = (labels[:7] + 3) % 10
    fig = plot_misclassified(images.reshape(200, 784), labels, y_pred, FASHION_MNIST_CLASSES)
    grid, cells = montage_cells(fig)
    assert len(cells) == 7 and grid == (3, 3)  # 3 x 3 grid, two empty cells
    for k, (_, image) in enumerate(cells):
        np.testing.assert_allclose(image, images[k])
    montage = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    assert np.isnan(montage[2 * (28 + MONTAGE_TITLE_ROWS) :, 28 + MONTAGE_GAP_COLUMNS :]).all()


def test_misclassified_none_wrong(fashion_test) -> None:
    images, labels = fashion_test
    fig = plot_misclassified(images, labels, labels, FASHION_MNIST_CLASSES)
    assert not any(ax.images for ax in fig.axes)
    assert fig.axes[0].texts[0].get_text() == "no misclassified images"
    assert_png(fig)


def test_misclassified_rejects_bad_input(fashion_test) -> None:
    images, labels = fashion_test
    with pytest.raises(PlotError, match="same length"):
        plot_misclassified(images, labels[:5], labels, DIGITS)
    with pytest.raises(PlotError, match="not square"):
        plot_misclassified(np.zeros((2, 10)), [0, 1], [1, 0], DIGITS)
    with pytest.raises(PlotError, match=r"y_pred must lie in \[0, 9\]"):
        plot_misclassified(images[:2], [0, 1], [1, 10], DIGITS)


def test_search_log_axis_coloured_by_batch(trials) -> None:
    fig = plot_search(trials)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert "learning rate" in ax.get_xlabel() and "validation accuracy" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["batch 32", "batch 64", "batch 128", "best", "diverged/failed"]
    batch32 = ax.collections[0].get_offsets()
    np.testing.assert_allclose(sorted(batch32[:, 0]), [0.003, 0.2])
    failed = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(sorted(failed[:, 0]), [0.05, 3.0])
    lo, hi = ax.get_xlim()
    assert lo < 0.003 and hi > 3.0  # failed trials inside the view
    assert "4 of 6 trials finished" in ax.get_title()
    assert_png(fig)


def test_search_all_failed_and_bad_lr(trials) -> None:
    fig = plot_search([trials[2], trials[4]])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["diverged/failed"]
    assert_png(fig)
    bad = {**trials[0], "params": {**trials[0]["params"], "lr": 0.0}}
    with pytest.raises(PlotError, match="lr"):
        plot_search([bad])
    with pytest.raises(PlotError, match="trials is empty"):
        plot_search([])


def test_trial_curves(trials) -> None:
    fig = plot_trial_curves(trials)
    acc, loss = fig.axes[:2]
    assert acc.get_ylabel() == "validation accuracy (%)" and loss.get_yscale() == "log"
    # failed trial has no values: five lines per axes
    assert len(acc.lines) == 5 and len(loss.lines) == 5
    widths = [line.get_linewidth() for line in acc.lines]
    assert widths.count(2.5) == 1  # the best trial (5) is highlighted
    dashed = [line for line in acc.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and len(dashed[0].get_xdata()) == 2  # the diverged trial
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["best: trial 5"]
    assert_png(fig)


def test_plots_stay_out_of_pyplot(trials) -> None:
    import matplotlib.pyplot as plt  # here: matplotlib only where a test draws

    before = plt.get_fignums()
    for _ in range(3):
        plot_search(trials)
        plot_curves(history(2))
    assert plt.get_fignums() == before


def test_halving_rounds_show_each_trial_once(trials) -> None:
    first = {
        **trials[0],
        "rung": 0,
        "val_accuracy": [0.8],
        "val_loss": [0.5],
        "epochs": 1,
        "best_val_accuracy": 0.8,
    }
    second = {**trials[0], "rung": 1}
    rounds = [first, {**trials[1], "rung": 0}, second]
    assert [t["rung"] for t in latest_per_trial(rounds)] == [1, 0]
    fig = plot_search(rounds)
    offsets = np.concatenate([c.get_offsets() for c in fig.axes[0].collections[:2]])
    assert len(offsets) == 2  # two trials, not three runs
    assert 100 * second["best_val_accuracy"] in offsets[:, 1]
    curves = plot_trial_curves(rounds)
    assert [len(line.get_xdata()) for line in curves.axes[0].lines] == [5, 5]


def test_one_epoch_trials_are_drawn(trials) -> None:
    """A trial of one epoch is a single point: it must show as a dot, not vanish."""
    short = [
        {**t, "val_accuracy": t["val_accuracy"][:1], "val_loss": t["val_loss"][:1], "epochs": 1}
        for t in trials
        if t["val_accuracy"]
    ]
    fig = plot_trial_curves(short)
    acc = fig.axes[0]
    assert acc.lines and all(len(line.get_xdata()) == 1 for line in acc.lines)

    def pixels() -> np.ndarray:
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)

    pixels()  # the constrained layout settles on the first drawing
    drawn = pixels()
    acc.set_xlim(acc.get_xlim())  # the same axes without the trials' lines
    acc.set_ylim(acc.get_ylim())
    for line in acc.lines:
        line.set_visible(False)
    changed = np.abs(drawn - pixels()).sum(axis=-1) > 0
    assert changed.sum() > 10 * len(acc.lines)  # every trial leaves a visible dot


@pytest.mark.parametrize(("plot", "dpi"), [("trial_curves", 50), ("curves", 100)])
def test_figure_to_png_draws_the_pixels_of_savefig(trials, plot, dpi) -> None:
    """The layout is computed once instead of once per draw: the pixels must not change
    (two figures, two resolutions: each figure at one of them)."""
    import io

    from PIL import Image

    def pixels(png: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(png)) as image:
            return np.asarray(image.convert("RGB"))

    draw = {
        "trial_curves": lambda: plot_trial_curves(trials),
        "curves": lambda: plot_curves(history(4)),
    }[plot]
    ours, theirs = draw(), draw()
    assert ours.get_layout_engine() is not None  # a figure the change applies to
    saved = io.BytesIO()
    theirs.savefig(saved, format="png", dpi=dpi)
    assert np.array_equal(pixels(figure_to_png(ours, dpi)), pixels(saved.getvalue()))
