"""Figures of a run: learning curves, confusion matrix, misclassified images, search results.

Every function returns a :class:`matplotlib.figure.Figure` on an Agg canvas and writes
nothing. The object API, not ``pyplot``, keeps figures out of pyplot's global registry: no
window, no backend switch, and the memory is freed when the figure is dropped.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tasks.errors import PlotError

if TYPE_CHECKING:  # matplotlib is imported when a plot is drawn: a cached report draws none
    from matplotlib.figure import Figure

#: Rows above each image of :func:`plot_misclassified` for its title, and columns between
#: images (in image pixels).
MONTAGE_TITLE_ROWS, MONTAGE_GAP_COLUMNS = 14, 4

#: Markers of trials that ended without an accuracy.
_FAILED_STYLE = {"marker": "x", "color": "tab:red", "s": 40, "linewidths": 1.5}


def _figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_to_png(fig: Figure, dpi: float = 100) -> bytes:
    """Render ``fig`` to PNG bytes at ``dpi`` dots per inch.

    A figure with a layout engine is laid out once, here, and then drawn where the layout
    put its axes: ``savefig`` alone lays it out twice (a draw that measures, then the draw
    that renders), for the same pixels (``python bench/report_speed.py`` times both).
    """
    engine = fig.get_layout_engine()
    if engine is not None:
        fig.set_dpi(dpi)  # the layout measures text in pixels at the figure's dpi
        engine.execute(fig)
        fig.set_layout_engine(None)  # the axes keep their positions; savefig draws once
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _values(records: Sequence[dict], key: str) -> np.ndarray:
    """``records[i][key]`` as float64, ``None`` and non-finite values as NaN."""
    out = np.array([np.nan if r.get(key) is None else float(r[key]) for r in records])
    out[~np.isfinite(out)] = np.nan
    return out


def plot_curves(history: Sequence[dict]) -> Figure:
    """Loss (left) and accuracy in % (right) per epoch, train and validation.

    ``history``: one ``EpochRecord.to_dict()`` per epoch; ``val_loss`` and ``val_accuracy``
    are ``None`` without a validation split (those lines are left out).
    """
    if len(history) == 0:
        raise PlotError("history is empty: no epoch to plot")
    epochs = np.array([int(r.get("epoch", i + 1)) for i, r in enumerate(history)])
    fig = _figure(9, 3.6)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, scale, label in (
        (ax_loss, "loss", 1.0, "cross-entropy loss"),
        (ax_acc, "accuracy", 100.0, "accuracy (%)"),
    ):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = _values(history, f"{split}_{metric}") * scale
            if np.all(np.isnan(values)):
                continue
            name = "train" if split == "train" else "validation"
            ax.plot(epochs, values, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{metric.capitalize()} per epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines:
            ax.legend()
    return fig


def plot_confusion(cm: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str]) -> Figure:
    """Confusion matrix ``cm[true, predicted]`` (``(k, k)`` non-negative counts, ``k``
    ``class_names`` in label order), counts written in the cells; colours show the fraction
    of each true class (row-normalised), so rare classes stay readable."""
    cm = np.asarray(cm)
    k = len(class_names)
    if cm.ndim != 2 or cm.shape != (k, k):
        raise PlotError(f"cm must have shape ({k}, {k}) for {k} class names, got {cm.shape}")
    if np.any(cm < 0):
        raise PlotError("cm must hold non-negative counts")
    rows = cm.sum(axis=1, keepdims=True)
    fractions = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    size = max(4.5, 0.55 * k + 2.5)
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of true class", shrink=0.8)
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(ticks, [str(c) for c in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(cm.sum())
    correct = int(np.trace(cm))
    accuracy = f"{100 * correct / total:.2f}%" if total else "n/a"
    ax.set_title(f"Confusion matrix ({correct}/{total} correct, {accuracy})")
    if k <= 20:
        fontsize = 8 if k <= 12 else 6
        for i in range(k):
            for j in range(k):
                colour = "white" if fractions[i, j] > 0.5 else "black"
                text = str(int(cm[i, j]))
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)
    return fig


def plot_misclassified(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    max_images: int = 36,
) -> Figure:
    """A near-square grid of at most ``max_images`` misclassified images, each titled with
    its true and predicted class (a note when nothing was misclassified).

    ``images``: ``(n, h, w)`` floats in ``[0, 1]`` (or ``(n, d)`` with ``d`` square);
    ``y_true``, ``y_pred``: ``(n,)`` integer labels into ``class_names``.
    """
    if max_images < 1:
        raise PlotError(f"max_images must be >= 1, got {max_images}")
    images = np.asarray(images, dtype=np.float32)
    y_true = np.asarray(y_true).astype(np.int64)
    y_pred = np.asarray(y_pred).astype(np.int64)
    if images.ndim == 2:
        side = math.isqrt(images.shape[1])
        if side * side != images.shape[1]:
            raise PlotError(f"images of {images.shape[1]} pixels are not square; pass (n, h, w)")
        images = images.reshape(-1, side, side)
    if images.ndim != 3:
        raise PlotError(f"images must have shape (n, h, w), got {images.shape}")
    if not (images.shape[0] == y_true.shape[0] == y_pred.shape[0]):
        raise PlotError(
            f"images, y_true and y_pred must have the same length, got "
            f"{images.shape[0]}, {y_true.shape[0]} and {y_pred.shape[0]}"
        )
    k = len(class_names)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= k):
            raise PlotError(f"{name} must lie in [0, {k - 1}] for {k} class names")
    wrong = np.flatnonzero(y_true != y_pred)[:max_images]
    if wrong.size == 0:
        fig = _figure(4, 1.5)
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        ax.set_axis_off()
        return fig
    cols = math.ceil(math.sqrt(wrong.size))
    rows = math.ceil(wrong.size / cols)
    # One image of all the cells, in one axes: dozens of axes (and their layout) cost five
    # times more to draw. A cell is the image with room above it for its title.
    side_h, side_w = images.shape[1:]
    cell_h, cell_w = side_h + MONTAGE_TITLE_ROWS, side_w + MONTAGE_GAP_COLUMNS
    montage = np.full((rows * cell_h, cols * cell_w), np.nan, dtype=np.float32)
    height = 1.5 * rows + 0.5
    fig = _figure(1.3 * cols, height, layout=None)
    ax = fig.add_axes((0.02, 0.02, 0.96, 1 - 0.02 - 0.7 / height))
    ax.set_anchor("N")
    for k, i in enumerate(wrong):
        top, left = (k // cols) * cell_h + MONTAGE_TITLE_ROWS, (k % cols) * cell_w
        montage[top : top + side_h, left : left + side_w] = images[i].clip(0.0, 1.0)
        title = f"true {class_names[y_true[i]]}\npred {class_names[y_pred[i]]}"
        ax.text(left + side_w / 2, top - 1, title, ha="center", va="bottom", fontsize=8)
    from matplotlib import colormaps

    cmap = colormaps["gray_r"].with_extremes(bad="white")  # NaN: the space between cells
    ax.imshow(montage, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(f"Misclassified test images ({wrong.size} shown)", y=1 - 0.12 / height)
    return fig


def _trial_accuracy(trial: dict) -> float | None:
    acc = trial.get("best_val_accuracy")
    if trial.get("status", "ok") != "ok" or acc is None or not math.isfinite(float(acc)):
        return None
    return float(acc)


def latest_per_trial(trials: Sequence[dict]) -> list[dict]:
    """One entry per trial index, in order of first appearance: its last successive-halving
    round (highest ``rung``), which holds its most complete curve."""
    latest: dict[int, dict] = {}
    for position, trial in enumerate(trials):
        key = int(trial.get("trial", -1 - position))
        if key not in latest or int(trial.get("rung", 0)) >= int(latest[key].get("rung", 0)):
            latest[key] = trial
    return list(latest.values())


def plot_search(trials: Sequence[dict]) -> Figure:
    """Best validation accuracy (%) of each trial against its learning rate (log scale).

    ``trials``: ``TrialResult.to_dict()`` dicts (``params`` with ``lr`` > 0 and
    ``batch_size``, ``status``, ``best_val_accuracy``); one colour per batch size, trials
    without an accuracy as red crosses on the bottom edge, each trial's last round.
    """
    if len(trials) == 0:
        raise PlotError("trials is empty: no search result to plot")
    trials = latest_per_trial(trials)
    lrs = np.array([float(t["params"]["lr"]) for t in trials])
    if np.any(~np.isfinite(lrs) | (lrs <= 0)):
        raise PlotError("every trial's params['lr'] must be a positive number for a log axis")
    accuracies = [_trial_accuracy(t) for t in trials]
    fig = _figure(6.5, 4.2)
    ax = fig.subplots()
    ax.set_xscale("log")
    ok = [i for i, a in enumerate(accuracies) if a is not None]
    batches = sorted({int(trials[i]["params"].get("batch_size", 0)) for i in ok})
    colours = [f"C{j % 10}" for j in range(len(batches))]
    for batch, colour in zip(batches, colours, strict=True):
        idx = [i for i in ok if int(trials[i]["params"].get("batch_size", 0)) == batch]
        accuracy = [100 * accuracies[i] for i in idx]
        ax.scatter(lrs[idx], accuracy, color=colour, s=30, label=f"batch {batch}",
                   edgecolors="black", linewidths=0.4)  # fmt: skip
    if ok:
        best = max(ok, key=lambda i: accuracies[i])
        ax.scatter([lrs[best]], [100 * accuracies[best]], s=160, facecolors="none",
                   edgecolors="black", linewidths=1.2, label="best")  # fmt: skip
    failed = [i for i, a in enumerate(accuracies) if a is None]
    if failed:
        # x in data units, y in axes units: the crosses sit on the bottom edge.
        ax.scatter(lrs[failed], np.zeros(len(failed)), transform=ax.get_xaxis_transform(),
                   label="diverged/failed", clip_on=False, zorder=3, **_FAILED_STYLE)  # fmt: skip
    low, high = np.log10(lrs.min()), np.log10(lrs.max())
    pad = max(0.1, 0.05 * (high - low))
    ax.set_xlim(10 ** (low - pad), 10 ** (high + pad))
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title(f"Random search: {len(ok)} of {len(trials)} trials finished")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_trial_curves(trials: Sequence[dict]) -> Figure:
    """Validation accuracy (%) and loss per epoch of every trial (its last round), the best
    one highlighted, the others coloured by log learning rate, dashed if unfinished.

    ``trials``: ``TrialResult.to_dict()`` dicts with ``val_accuracy`` and ``val_loss``
    lists (possibly empty or cut short for diverged and failed trials).
    """
    if len(trials) == 0:
        raise PlotError("trials is empty: no search result to plot")
    trials = latest_per_trial(trials)
    fig = _figure(10, 3.8)
    ax_acc, ax_loss = fig.subplots(1, 2)
    accuracies = [_trial_accuracy(t) for t in trials]
    finished = [i for i, a in enumerate(accuracies) if a is not None]
    best = max(finished, key=lambda i: accuracies[i]) if finished else None
    lrs = [float(t.get("params", {}).get("lr", 1.0)) for t in trials]
    positive = [lr for lr in lrs if lr > 0 and math.isfinite(lr)]
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    norm = LogNorm(min(positive, default=1e-3), max(positive, default=1.0) * (1 + 1e-9))
    cmap = colormaps["viridis"]
    for i, trial in enumerate(trials):
        style = "-" if accuracies[i] is not None else "--"
        width, alpha = (2.5, 1.0) if i == best else (1.0, 0.6)
        colour = "black" if i == best else cmap(norm(lrs[i])) if lrs[i] > 0 else "grey"
        for ax, key, scale in ((ax_acc, "val_accuracy", 100.0), (ax_loss, "val_loss", 1.0)):
            values = np.array([np.nan if v is None else float(v) for v in trial.get(key) or []])
            values[~np.isfinite(values) | (values <= 0)] = np.nan
            if values.size == 0:
                continue
            label = (
                f"best: trial {trial.get('trial', i)}" if i == best and key == "val_loss" else None
            )
            size = 5 if values.size == 1 else 3  # a one-epoch trial is a single point
            ax.plot(np.arange(1, values.size + 1), values * scale, style + "o", markersize=size,
                    color=colour, linewidth=width, alpha=alpha, label=label)  # fmt: skip
    mappable = ax_loss.scatter([], [], c=[], cmap=cmap, norm=norm)
    fig.colorbar(mappable, ax=[ax_acc, ax_loss], label="learning rate")
    for ax, label in ((ax_acc, "validation accuracy (%)"), (ax_loss, "validation loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.set_yscale("log")
    ax_acc.set_title("Validation accuracy")
    ax_loss.set_title("Validation loss")
    fig.suptitle(f"Per-trial learning curves ({len(trials)} trials; dashed: diverged or failed)")
    if best is not None:
        ax_loss.legend(fontsize=8)
    return fig
