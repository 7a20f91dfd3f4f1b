"""The report's figures as PNG images: which plots a run has, drawn or found in a cache.

:func:`build_plots` says which plots a run's data allow, each with the data it shows;
:func:`render` turns one into its two PNGs (the file beside ``report.md`` and the small one
for the UI). Drawing is most of a report's time, so given a cache folder :func:`render` keeps
both images there, keyed by a hash of the plot's data and :data:`CODE_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from tasks.files import write_bytes_atomic
from tasks.outputs.embed import compact_png
from tasks.outputs.plots import (
    figure_to_png,
    plot_confusion,
    plot_curves,
    plot_misclassified,
    plot_search,
    plot_trial_curves,
)
from tasks.outputs.searchplots import SEARCH_PLOTS, plot_history, plot_parallel

if TYPE_CHECKING:  # matplotlib is imported when a plot is drawn (tasks.outputs.plots)
    from matplotlib.figure import Figure

__all__ = ["CODE_VERSION", "FILE_DPI", "SEARCH_PLOTS", "PlotSpec", "build_plots", "render"]

CODE_VERSION = 2
"""Bump when a change in :mod:`tasks.outputs.plots` or :mod:`tasks.outputs.searchplots`
changes how a plot looks: every cached image is then drawn anew."""

FILE_DPI = 100
"""Resolution of the PNG files written beside ``report.md``."""

_NOT_DRAWN = frozenset({"cached", "seconds"})
"""Fields of a trial that no plot shows (a re-run serves its trials from the store)."""
_ORDER = ("curves", "confusion", "misclassified", "history", "parallel", "search", "trial_curves")


class PlotSpec(NamedTuple):
    """One plot of the report: the data it shows and the function drawing it."""

    inputs: object
    draw: Callable[[], Figure]


def build_plots(
    metrics: Mapping,
    names: list[str],
    history: Sequence[Mapping] | None,
    errors: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    trials: Sequence[Mapping] | None,
) -> dict[str, PlotSpec]:
    """The report's plots that ``metrics``, ``history``, ``errors`` and ``trials`` allow:
    name -> :class:`PlotSpec` (all the data the plot depends on, a cache key, and a function
    drawing it, so each figure exists only while written)."""
    specs: dict[str, PlotSpec] = {}
    if trials:  # what a plot key needs: not whether the trial came from the store
        drawn = [{k: v for k, v in t.items() if k not in _NOT_DRAWN} for t in trials]
        specs["search"] = PlotSpec(drawn, lambda: plot_search(trials))
        specs["trial_curves"] = PlotSpec(drawn, lambda: plot_trial_curves(trials))
        specs["history"] = PlotSpec(drawn, lambda: plot_history(trials))
        specs["parallel"] = PlotSpec(drawn, lambda: plot_parallel(trials))
    if history:
        specs["curves"] = PlotSpec(history, lambda: plot_curves(history))
    if metrics.get("confusion_matrix") is not None:
        matrix = metrics["confusion_matrix"]
        specs["confusion"] = PlotSpec((matrix, names), lambda: plot_confusion(matrix, names))
    if errors is not None:
        specs["misclassified"] = PlotSpec(
            (*errors, names), lambda: plot_misclassified(*errors, names)
        )
    return {name: specs[name] for name in _ORDER if name in specs}


def _digest(value: object) -> str:
    """A hex digest of ``value`` and the code version: arrays by dtype, shape and bytes,
    the rest as JSON."""
    digest = hashlib.sha256(f"plots-{CODE_VERSION}".encode())

    def feed(item: object) -> None:
        if isinstance(item, np.ndarray):
            digest.update(f"{item.dtype.str}{item.shape}".encode())
            digest.update(np.ascontiguousarray(item).tobytes())
        elif isinstance(item, list | tuple):
            digest.update(f"[{len(item)}".encode())
            for part in item:
                feed(part)
        else:
            digest.update(json.dumps(item, sort_keys=True, default=str).encode())

    feed(value)
    return digest.hexdigest()[:32]


def render(spec: PlotSpec, cache: Path | None, name: str) -> tuple[bytes, bytes | None]:
    """The plot's file PNG and its embeddable PNG (None: too large), from ``cache`` if there."""
    if cache is not None:
        key = cache / f"{name}-{_digest(spec.inputs)}"
        file_png, small_png = key.with_suffix(".png"), key.with_suffix(".embed.png")
        if file_png.is_file() and small_png.is_file():
            small = small_png.read_bytes()
            return file_png.read_bytes(), small or None
    fig = spec.draw()  # object-API figure, outside pyplot's registry: freed when dropped
    data = figure_to_png(fig, FILE_DPI)
    del fig
    small = compact_png(data, FILE_DPI)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(small_png, small or b"")  # empty: too large to embed
        write_bytes_atomic(file_png, data)
    return data, small
