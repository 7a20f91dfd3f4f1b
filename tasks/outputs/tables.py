"""Tables a person reads: markdown tables, and table rows made to fit a screen
(:func:`tidy_columns` leaves out the columns holding one value in every row)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tasks.tuning.trials import budget_text

__all__ = [
    "applicable",
    "best_trial",
    "cell",
    "markdown_table",
    "number",
    "parameters_used_lines",
    "percent",
    "tidy_columns",
    "trial_table",
]


def cell(value: object) -> str:
    """A markdown table cell: one line, pipes escaped."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


def number(value: object, spec: str) -> str:
    """``value`` formatted with ``spec``; "—" for None, the text itself if not a number."""
    if value is None or isinstance(value, bool):
        return "—" if value is None else str(value)
    try:
        figure = float(value)  # type: ignore[arg-type]  # checked by the except
    except (TypeError, ValueError):
        return cell(value)
    return format(figure, spec) if math.isfinite(figure) else str(figure)


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{number(100 * float(fraction), '.2f')}%"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown lines of a table; cells are given as text (see :func:`cell`)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def applicable(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without the settings their optimizer and schedule do not use (Adam's
    betas under SGD, momentum under Adam, the step size of a cosine schedule, ...)."""
    unused: set[str] = set()
    optimizer, schedule = params.get("optimizer"), params.get("schedule")
    if optimizer is not None:
        unused |= {"momentum", "nesterov"} if optimizer == "adam" else {"beta1", "beta2", "epsilon"}
    if schedule is not None:
        unused |= {"step_size"} if schedule == "exponential" else set()
        unused |= set() if schedule in ("step", "exponential") else {"decay", "step_size"}
    return {key: value for key, value in params.items() if key not in unused}


def best_trial(trials: Sequence[Mapping]) -> Mapping | None:
    """The finished (``status == "ok"``) trial with the highest best validation accuracy."""
    finished = [
        t
        for t in trials
        if t.get("status") == "ok"
        and t.get("best_val_accuracy") is not None
        and math.isfinite(float(t["best_val_accuracy"]))
    ]
    return max(finished, key=lambda t: float(t["best_val_accuracy"]), default=None)


def _schedule(p: Mapping[str, Any]) -> str:
    schedule = str(p.get("schedule", "—"))
    if schedule in ("step", "exponential") and p.get("decay") is not None:
        schedule += f" ×{number(p['decay'], '.3g')}"
        if schedule.startswith("step") and p.get("step_size") is not None:
            schedule += f" every {p['step_size']}"
    if p.get("warmup_epochs"):
        schedule += f", warm-up {p['warmup_epochs']}"
    return schedule


def trial_table(trials: Sequence[Mapping], shared: Mapping[str, Any] | None = None) -> list[str]:
    """Markdown lines of the trial table, best in bold, made to fit a browser window.

    One row per trial and round; ``shared``: the settings every trial took from the
    recipe under its own ``params``. Columns with one value in every row are named once,
    in a line above the table.
    """
    best = best_trial(trials)
    halving = any(int(t.get("rung", 0)) > 0 for t in trials)
    rows = []
    for t in sorted(trials, key=lambda t: (int(t.get("trial", 0)), int(t.get("rung", 0)))):
        p = {**(shared or {}), **t.get("params", {})}
        status = str(t.get("status", "—")) + (" (cached)" if t.get("cached") else "")
        if t.get("error"):
            error = " ".join(str(t["error"]).split())
            status += ": " + (error if len(error) <= 60 else error[:57] + "...")
        trial = str(t.get("trial", "—"))
        row = {"trial": f"**{trial}** (best)" if t is best else trial}
        if halving:
            row["round"] = str(int(t.get("rung", 0)) + 1)
        row |= {
            "lr": number(p.get("lr"), ".3g"),
            "batch": cell(p.get("batch_size", "—")),
            "momentum": number(p.get("momentum"), ".3g"),
            "Nesterov": cell(p.get("nesterov", "—")),
            "weight decay": number(p.get("weight_decay"), ".2g"),
            "schedule": cell(_schedule(p)),
            "status": cell(status),
            "val acc": percent(t.get("best_val_accuracy")),
            "epochs": budget_text(t).removeprefix("epochs "),
            "s": number(t.get("seconds"), ".1f"),
        }
        rows.append(row)
    shown, same = tidy_columns(rows, keep=("trial", "lr", "val acc", "status", "epochs", "s"))
    same = {k: v for k, v in same.items() if v != "—"}  # a setting no trial has: no mention
    lines = [f"Every trial: {', '.join(f'{k} {v}' for k, v in same.items())}.", ""] if same else []
    header = list(shown[0]) if shown else []
    return lines + markdown_table(header, [[row.get(k, "—") for k in header] for row in shown])


def tidy_columns(
    rows: Sequence[Mapping[str, Any]], first: Iterable[str] = (), keep: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows with the columns of ``first`` leading and the constant columns left out.

    ``rows`` map column names to values; ``first`` (columns to put first, in order) and
    ``keep`` (shown even when constant) may name missing columns. A column is constant
    when every row has the same value in it (one some rows lack is not; with a single row
    nothing is). Returns the reordered rows and ``constants``: column -> its one value.
    """
    columns: list[str] = []
    for row in rows:
        columns += [name for name in row if name not in columns]
    leading = [name for name in dict.fromkeys(first) if name in columns]
    order = leading + [name for name in columns if name not in leading]
    kept = set(keep)
    constants: dict[str, Any] = {}
    for name in order if len(rows) > 1 else ():
        values = [row[name] for row in rows if name in row]
        if name not in kept and len(values) == len(rows) and values.count(values[0]) == len(rows):
            constants[name] = values[0]
    shown = [name for name in order if name not in constants]
    return [{name: row[name] for name in shown if name in row} for row in rows], constants


def parameters_used_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines of the "parameters used" table (``parameter``, ``value``, ``source``)."""

    def text(value: object) -> str:
        return cell("—" if value is None or value == "" else value)

    body = [[f"`{text(r['parameter'])}`", text(r["value"]), text(r["source"])] for r in rows]
    return markdown_table(["parameter", "value", "source"], body)
