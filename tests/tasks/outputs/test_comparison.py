"""The report's comparison of tuned and recipe, and the search-course plots."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.outputs.comparison import comparison_lines
from tasks.outputs.report import render_report
from tasks.outputs.searchplots import plot_history, plot_parallel
from tests.tasks.outputs.test_plots import assert_png


def trial(index: int, rung: int, lr: float, accuracy: float | None, **extra) -> dict:
    return {
        "trial": index, "rung": rung, "epochs": 3 * 3**rung, "horizon": 27,
        "resumed": 3 ** rung if rung else 0, "params": {"lr": lr, "batch_size": 128, **extra},
        "status": "ok" if accuracy is not None else "diverged",
        "best_val_accuracy": accuracy, "val_accuracy": [] if accuracy is None else [accuracy],
        "val_loss": [], "seconds": 1.0, "error": None if accuracy else "loss nan",
    }  # fmt: skip


TRIALS = [
    trial(0, 0, 0.05, 0.980),
    trial(1, 0, 0.1, 0.982, batch_size=256),
    trial(2, 0, 3.0, None),
    trial(3, 0, 0.02, 0.975),
    trial(0, 1, 0.05, 0.988),
    trial(1, 1, 0.1, 0.9905, batch_size=256),
]

CHOICE = {
    "chosen": "recipe",
    "reason": "trial 1 beat the recipe by 0.25 points, not more than one standard error",
    "margin": 0.003,
    "reference": {"trial": 0, "epochs": 9, "val_accuracy": 0.988, "test_accuracy": 0.9871},
    "top": {"trial": 1, "epochs": 9, "val_accuracy": 0.9905, "test_accuracy": 0.9866},
}


def test_the_section_compares_recipe_best_trial_and_final_model():
    search = {"choice": CHOICE, "final_start": "retrained from the start on every image"}
    text = "\n".join(comparison_lines(search, 0.9935))
    assert "| the recipe (trial 0) | 0 | 9 | 98.80 % | 98.71 % |" in text
    assert "| best trial | 1 | 9 | 99.05 % | 98.66 % |" in text
    assert "| final model (the recipe) | — | — | — | 99.35 % |" in text
    assert "Kept the recipe: trial 1 beat the recipe by 0.25 points" in text
    assert "The final model was retrained from the start on every image." in text
    assert comparison_lines({"trials": []}, 0.9) == []  # no choice recorded: no section


def test_a_space_without_the_recipe_is_said_in_bold_and_continuation_is_named():
    choice = {"chosen": "tuned", "reason": "trial 2 is the best; the recipe is not a trial",
              "reference": None, "recipe_excluded": "lr=0.05 is outside 0.001:0.01:log",
              "top": {"trial": 2, "epochs": 27, "val_accuracy": 0.97}}  # fmt: skip
    search = {"choice": choice, "final_start": "continued from the chosen trial's checkpoint"}
    metrics = {"test_accuracy": 0.97, "search": search}
    report = render_report(metrics, run_dir="r", images={}, trials=TRIALS)
    assert "**The search space leaves the dataset's recipe out** (lr=0.05 is outside" in report
    assert "The final model was continued from the chosen trial's checkpoint." in report
    assert "| best trial | 2 | 27 | 97.00 % | — |" in report
    assert "| round |" in report and "| 4-9 of 27 |" in report  # rung and epochs shown
    assert "momentum" not in report  # no trial has one: neither a column nor a mention


def test_history_plot_marks_rounds_best_so_far_recipe_and_failures():
    fig = plot_history(TRIALS)
    (ax,) = fig.axes
    labels = ax.get_legend_handles_labels()[1]
    assert labels[:2] == ["round 1", "trial 0 (the recipe)"]
    assert "round 2" in labels and "diverged/failed" in labels
    steps = [line.get_ydata() for line in ax.get_lines()]
    np.testing.assert_allclose(steps[0], [98.0, 98.2, 98.2])  # best so far of round 1
    assert_png(fig)


def test_parallel_plot_has_an_axis_per_varying_parameter_and_the_recipe_dashed():
    fig = plot_parallel(TRIALS)
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].startswith("batch_size\n128 .. 256") and ticks[1].startswith("lr\n0.02 .. 3")
    assert ticks[-1].startswith("val acc (%)")
    lines = ax.get_lines()
    recipe = [line for line in lines if line.get_label() == "the recipe"]
    assert len(recipe) == 1 and recipe[0].get_linestyle() == "--"
    # trial 1 (the best, round 2): top of the accuracy axis; trial 2 diverged: bottom, grey
    assert lines[1].get_ydata()[-1] == pytest.approx(1.0)
    assert lines[2].get_ydata()[-1] == 0.0 and lines[2].get_color() == "grey"
    assert_png(fig)
