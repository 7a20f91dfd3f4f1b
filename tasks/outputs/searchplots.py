"""Figures of the search's course: the optimisation history and the parallel coordinates.

Like :mod:`tasks.outputs.plots`, each function returns a Figure on an Agg canvas and
writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tasks.errors import PlotError
from tasks.outputs.plots import _FAILED_STYLE, _figure, _trial_accuracy, latest_per_trial

if TYPE_CHECKING:  # imported when a plot is drawn, as in tasks.outputs.plots
    from matplotlib.figure import Figure

__all__ = ["SEARCH_PLOTS", "plot_history", "plot_parallel"]

SEARCH_PLOTS = {
    "history": ("search_history.png", "Search: optimisation history"),
    "parallel": ("search_parallel.png", "Search: parallel coordinates of the trials"),
}
"""Plot name -> (file name, caption) of the plots here, for the report's table of plots."""

_LOG = {"lr", "weight_decay", "batch_size", "hidden"}


def plot_history(trials: Sequence[dict]) -> Figure:
    """Validation accuracy of every trial run, in the order run, with the best so far.

    ``trials``: ``TrialResult.to_dict()`` dicts in the order the search ran them. Dots
    coloured by round, the best-so-far line of each round, trial 0 (the recipe) ringed,
    trials that diverged or failed as red crosses on the bottom edge.
    """
    if len(trials) == 0:
        raise PlotError("trials is empty: no search result to plot")
    fig = _figure(6.5, 4.0)
    ax = fig.subplots()
    x = np.arange(1, len(trials) + 1)
    accuracy = [_trial_accuracy(t) for t in trials]
    rungs = sorted({int(t.get("rung", 0)) for t in trials})
    for rung in rungs:
        idx = [i for i, t in enumerate(trials) if int(t.get("rung", 0)) == rung]
        ok = [i for i in idx if accuracy[i] is not None]
        colour = f"C{rung % 10}"
        if ok:
            values = np.array([100 * accuracy[i] for i in ok])
            label = f"round {rung + 1}" if len(rungs) > 1 else "trial"
            ax.scatter(x[ok], values, color=colour, s=28, label=label, zorder=3)
            ax.step(x[ok], np.maximum.accumulate(values), where="post", color=colour, alpha=0.7)
        recipe = [i for i in ok if int(trials[i].get("trial", -1)) == 0]
        if recipe:
            ax.scatter(
                x[recipe], [100 * accuracy[i] for i in recipe], s=120, facecolors="none",
                edgecolors="black", linewidths=1.2, zorder=4,
                label="trial 0 (the recipe)" if rung == rungs[0] else None,
            )  # fmt: skip
    failed = [i for i, a in enumerate(accuracy) if a is None]
    if failed:
        ax.scatter(
            x[failed], np.zeros(len(failed)), transform=ax.get_xaxis_transform(),
            label="diverged/failed", clip_on=False, zorder=3, **_FAILED_STYLE,
        )  # fmt: skip
    ax.set_xlabel("trial run, in the order of the search")
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title("Optimisation history (line: best so far in each round)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _axis_values(name: str, values: list[object]) -> tuple[np.ndarray, list[str]]:
    """Positions in [0, 1] of one parameter's values, and tick labels for its ends."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            numbers = []
            break
    if numbers and all(math.isfinite(v) for v in numbers):
        array = np.array(numbers)
        if name in _LOG and (array > 0).all():
            array = np.log10(array)
        low, high = array.min(), array.max()
        scaled = (array - low) / (high - low) if high > low else np.full(array.shape, 0.5)
        return scaled, [f"{min(numbers):.3g}", f"{max(numbers):.3g}"]
    labels = sorted({str(v) for v in values})
    position = {label: i / max(len(labels) - 1, 1) for i, label in enumerate(labels)}
    return np.array([position[str(v)] for v in values]), [labels[0], labels[-1]]


def plot_parallel(trials: Sequence[dict]) -> Figure:
    """Parallel coordinates of the trials (``TrialResult.to_dict()``, each its last round).

    One axis per parameter that varies (log scale for :data:`_LOG`, labelled with its
    lowest and highest value), then the validation accuracy; lines coloured by accuracy,
    the recipe (trial 0) dashed black, failed trials grey.
    """
    if len(trials) == 0:
        raise PlotError("trials is empty: no search result to plot")
    trials = latest_per_trial(trials)
    names = sorted({name for t in trials for name in t.get("params", {})})
    varying = [n for n in names if len({str(t["params"].get(n)) for t in trials}) > 1]
    accuracy = [_trial_accuracy(t) for t in trials]
    columns = [_axis_values(n, [t["params"].get(n) for t in trials]) for n in varying]
    finished = [100 * a for a in accuracy if a is not None]
    low, high = (min(finished), max(finished)) if finished else (0.0, 1.0)
    acc_axis = np.array(
        [0.0 if a is None else ((100 * a - low) / (high - low) if high > low else 0.5)
         for a in accuracy]
    )  # fmt: skip
    fig = _figure(max(5.0, 1.4 * (len(varying) + 1) + 1.5), 4.0)
    ax = fig.subplots()
    x = np.arange(len(varying) + 1)
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    norm, cmap = Normalize(low, high if high > low else low + 1), colormaps["viridis"]
    for i, trial in enumerate(trials):
        y = [*(column[0][i] for column in columns), acc_axis[i]]
        if accuracy[i] is None:
            style = {"color": "grey", "linestyle": ":", "alpha": 0.6}
        elif int(trial.get("trial", -1)) == 0:
            style = {"color": "black", "linestyle": "--", "linewidth": 2, "label": "the recipe"}
        else:
            style = {"color": cmap(norm(100 * accuracy[i])), "alpha": 0.9}
        ax.plot(x, y, marker="o", markersize=3, **style)
    labels = [f"{n}\n{lo} .. {hi}" for n, (_, (lo, hi)) in zip(varying, columns, strict=True)]
    ax.set_xticks(x, [*labels, f"val acc (%)\n{low:.2f} .. {high:.2f}"], fontsize=8)
    ax.set_yticks([0, 1], ["low", "high"])
    for position in x:
        ax.axvline(position, color="0.7", linewidth=0.8, zorder=0)
    ax.set_title(f"Parallel coordinates of {len(trials)} trials (colour: validation accuracy)")
    mappable = ax.scatter([], [], c=[], cmap=cmap, norm=norm)
    fig.colorbar(mappable, ax=ax, label="validation accuracy (%)")
    if any(int(t.get("trial", -1)) == 0 for t in trials):
        ax.legend(fontsize=8, loc="lower left")
    return fig
