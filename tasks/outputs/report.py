"""The run report: ``report.md`` with its PNG plots on disk, and its markdown for the UI.

:func:`render_report` turns metrics, search trials and image references into markdown;
:func:`write_report_files` draws the plots (:mod:`tasks.outputs.figures`), writes them and
``report.md`` into the run directory atomically, and returns the same report with every plot
embedded as a small ``data:image/png;base64`` image for the UI.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tasks.outputs import plots
from tasks.outputs.comparison import comparison_lines
from tasks.outputs.figures import SEARCH_PLOTS, build_plots, render
from tasks.outputs.rundir import write_file
from tasks.outputs.tables import applicable, best_trial, parameters_used_lines, percent, trial_table
from tasks.outputs.tables import cell as _cell
from tasks.outputs.tables import markdown_table as _table
from tasks.outputs.tables import number as _num

__all__ = ["PLOTS", "best_trial", "percent", "render_report", "write_report_files"]

REPORT_FILENAME = "report.md"

#: Plot name -> (file name, caption), in report order.
PLOTS = {
    "curves": ("curves.png", "Loss and accuracy per epoch (final training)"),
    "confusion": ("confusion_matrix.png", "Confusion matrix on the test set"),
    "misclassified": ("misclassified.png", "Misclassified test images"),
    "search": ("search.png", "Search: validation accuracy against learning rate"),
    "trial_curves": ("trial_curves.png", "Search: per-trial learning curves"),
    **SEARCH_PLOTS,
}
_HEADLINE = ("test_accuracy", "test_loss", "macro_f1", "n_test")
_NOT_DETAILS = {*_HEADLINE, "per_class", "confusion_matrix", "class_names", "parameters_used"}
_NOT_DETAILS |= {"not_registered", "registry", "eval_set"}  # in the outcome and headline


def _value(value: object) -> str:
    """A parameter value as a table cell: floats to 4 significant figures, lists item by item."""
    if isinstance(value, list | tuple):
        return _cell("[" + ", ".join(_value(v) for v in value) + "]")
    if isinstance(value, float):
        return _num(value, ".4g")
    return "—" if value is None else _cell(value)


def _same(a: object, b: object) -> bool:
    """Whether two parameter values agree; a one-item list equals its item (256, [256])."""

    def norm(v: object) -> object:
        return v[0] if isinstance(v, list | tuple) and len(v) == 1 else v

    return norm(a) == norm(b)


def params_table(best: Mapping | None, final: Mapping | None) -> list[str]:
    """Markdown lines of the parameter table: the best trial's and the final model's values.

    One row per parameter of either (unset on both: left out); the final-model cell says
    "same" where they agree, "—" marks a parameter one side lacks. With one of them, a
    two-column table. Settings their optimizer or schedule does not use are left out.
    """
    best, final = applicable(best or {}), applicable(final or {})
    if not best or not final:
        only = best or final or {}
        return _table(["parameter", "value"], [[_cell(k), _value(v)] for k, v in only.items()])
    rows = []
    for key in [*best, *(k for k in final if k not in best)]:
        mine, theirs = best.get(key), final.get(key)
        if mine is None and theirs is None:
            continue  # unset on both sides (e.g. step_size without a step schedule)
        if key not in final:
            rows.append([_cell(key), _value(mine), "—"])
        elif key in best and _same(mine, theirs):
            rows.append([_cell(key), _value(mine), "same"])
        else:
            rows.append([_cell(key), _value(mine) if key in best else "—", _value(theirs)])
    return _table(["parameter", "best trial", "final model"], rows)


def _training_summary(metrics: Mapping, final: Mapping | None) -> str | None:
    """One sentence on the final training: epochs run, images, early stop, best epoch."""
    history = metrics.get("history")
    if not isinstance(history, Sequence) or not history:
        return None
    ran = len(history)
    planned = (final or {}).get("epochs")
    text = f"Ran {ran} of {planned} epochs" if planned else f"Ran {ran} epochs"
    data = metrics.get("dataset") or {}
    n_train, n_val = data.get("n_train"), data.get("n_val")
    if n_train is not None and n_val == 0:
        return text + f" on all {n_train:,} training images (no validation split)."
    if n_train is not None:
        text += f" on {n_train:,} training images ({n_val:,} held out for validation)"
    if metrics.get("stopped_early"):
        text += f" (stopped early, patience {(final or {}).get('patience', '—')})"
    best = metrics.get("best_epoch")
    if best is not None:
        text += f"; lowest validation loss at epoch {best}"
        if (final or {}).get("patience") is not None and best != ran:
            text += ", whose weights the model keeps"
    return text + "."


def _lineage(data: Mapping) -> str:
    return f"{data.get('version', 'base')} ({data.get('n_added', 0):,})"


def _run_details(metrics: Mapping, skip: frozenset[str] = frozenset()) -> dict[str, object]:
    """Scalar entries of ``metrics`` beyond the headline and ``skip``, plus the dataset's name,
    each under its name in words (``model_path``: "model path")."""
    details: dict[str, object] = {}
    for key, value in metrics.items():
        label = key.replace("_", " ")
        if key in _NOT_DETAILS or key in skip:
            continue
        if value is None or isinstance(value, str | int | float | bool):
            details[label] = value
        elif isinstance(value, Mapping) and isinstance(value.get("name"), str):
            details[label] = value["name"]  # e.g. "dataset": {"name": ..., "checksums": ...}
    return details


def outcome(metrics: Mapping) -> str | None:
    """What the run did with its model, in one sentence (None: a run that registers nothing,
    such as ``mnist-flow evaluate``)."""
    decision, unfit = metrics.get("registry"), metrics.get("not_registered")
    if decision is None:
        return f"Not registered: the {unfit}." if unfit else None
    version, review = decision["challenger_version"], decision.get("review")
    if decision["promoted"]:
        by = f", approved by {review['by']}" if review else ""
        return f"{version} registered and promoted to champion{by}."
    if review is not None and not review["approved"]:
        why = f": {review['reason']}" if review["reason"] else " (no reason given)"
        return f"{version} registered; its promotion was rejected by {review['by']}{why}."
    kept = decision["champion_version"]
    if kept == version:
        return f"{version} is the champion already ({decision['reason']})."
    return f"{version} registered; the champion {kept} stays ({decision['reason']})."


def _headline(metrics: Mapping) -> list[list[str]]:
    """The headline rows: with added data, first the accuracy that decided the promotion."""
    rows = []
    same_set = metrics.get("eval_set")
    decided = (metrics.get("registry") or {}).get("evaluated_on", "the test set")
    n_test = _cell(metrics.get("n_test", "—"))
    if same_set and decided != "the test set":
        where = f"test set + {same_set['n_heldout']:,} held-out added images"
        rows.append([f"accuracy on {where} (decided the promotion)", percent(same_set["accuracy"])])
        rows.append([f"accuracy on the test set alone ({n_test} images)", ""])
    else:
        rows.append(["test accuracy", ""])
    rows[-1][1] = percent(metrics.get("test_accuracy"))
    return [
        *rows,
        ["test loss (cross-entropy)", _num(metrics.get("test_loss"), ".4f")],
        ["macro F1", _num(metrics.get("macro_f1"), ".4f")],
        ["test images", n_test],
        ["data version (images added)", _lineage(metrics.get("dataset") or {})],
    ]


def render_report(
    metrics: Mapping,
    *,
    run_dir: str,
    images: Mapping[str, str | None],
    trials: Sequence[Mapping] | None = None,
    best_params: Mapping | None = None,
    decision_markdown: str | None = None,
) -> str:
    """The report as markdown.

    Parameters
    ----------
    metrics:
        :func:`tasks.scoring.metrics.evaluation_metrics` output plus the run's entries:
        other scalars and named dicts go under "Run details"; ``params["train"]`` shares
        the parameter table with ``best_params``; ``history``, ``best_epoch`` and
        ``stopped_early`` give the summary of the final training.
    run_dir:
        The run directory, shown so a person can find the files.
    images:
        Plot name (a key of :data:`PLOTS`) -> a file name relative to ``report.md`` or a
        ``data:`` URI; ``None``: only a file in ``run_dir`` (a note names it).
    trials:
        ``TrialResult.to_dict()`` dicts of the search, or ``None``.
    best_params:
        The chosen parameters; by default those of :func:`best_trial`.
    decision_markdown:
        The promotion decision, inserted as given.
    """

    def plot(name: str) -> list[str]:
        if name not in images:
            return []
        filename, caption = PLOTS[name]
        if images[name] is None:
            note = f"_Too large to show here: `{Path(run_dir) / filename}`._"
            return ["", f"### {caption}", "", note]
        return ["", f"### {caption}", "", f"![{caption}]({images[name]})"]

    lines = ["# mnist-flow report", "", f"Run directory: `{run_dir}`", ""]
    said = outcome(metrics)
    lines += [f"**Outcome: {said}**", ""] if said else []
    lines += ["## Headline metrics", "", *_table(["metric", "value"], _headline(metrics))]
    if decision_markdown:
        lines += ["", "## Promotion decision", "", decision_markdown.strip()]

    best = best_trial(trials) if trials else None
    if best_params is None and best is not None:
        best_params = best.get("params")
    choice = (metrics.get("search") or {}).get("choice") or {}
    shared = {k: v for k, v in (choice.get("settings") or {}).items() if k != "epochs"}
    if best_params:
        best_params = {**shared, **best_params}  # the recipe's settings the trial used
    if best_params and best is not None and "epochs" not in best_params:
        best_params = {**best_params, "epochs": best.get("epochs")}  # epochs the trial ran
    train_params = (metrics.get("params") or {}).get("train")
    if not isinstance(train_params, Mapping):
        train_params = None
    if best_params or train_params:
        lines += ["", "## Parameters", ""]
        if best_params and best is not None:
            accuracy = percent(best.get("best_val_accuracy"))
            lines += [f"Trial {best.get('trial')} reached {accuracy} validation accuracy.", ""]
        lines += params_table(best_params, train_params)

    summary = _training_summary(metrics, train_params)
    if summary or "curves" in images:
        lines += ["", "## Final training"]
        lines += ["", summary] if summary else []
        lines += plot("curves")

    lines += ["", "## Test set", *plot("confusion"), *plot("misclassified")]
    if metrics.get("per_class"):
        rows = [
            [_cell(c["class"]), *(_num(c[k], ".4f") for k in ("precision", "recall", "f1")),
             _cell(c["support"])]
            for c in metrics["per_class"]
        ]  # fmt: skip
        lines += ["", "### Per-class metrics", ""]
        lines += _table(["class", "precision", "recall", "F1", "support"], rows)

    if trials:
        n_ok = sum(t.get("status") == "ok" for t in trials)
        where = ((metrics.get("search") or {}).get("placement") or {}).get("where")
        ran = f" Trials ran on {where}." if where else ""
        lines += ["", "## Search", "", f"{n_ok} of {len(trials)} trials finished.{ran}"]
        lines += comparison_lines(metrics.get("search"), metrics.get("test_accuracy"), plot)
        lines += ["", "### Trials", "", *trial_table(trials, shared)]

    if metrics.get("parameters_used"):
        lines += ["", "## Parameters used", "", *parameters_used_lines(metrics["parameters_used"])]
    shown = frozenset({"best_epoch", "stopped_early"} if summary else ())  # in the summary
    details = [[_cell(k), _value(v)] for k, v in _run_details(metrics, shown).items()]
    if details:
        lines += ["", "## Run details", "", *_table(["item", "value"], details)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class WrittenReport:
    """What :func:`write_report_files` wrote: ``report.md``, the same report for the UI
    (``ui_markdown``, plots embedded, files listed), the PNG ``plots`` in report order, and
    the plots ``not_embedded`` (too large)."""

    path: Path
    ui_markdown: str
    plots: list[str] = field(default_factory=list)
    not_embedded: list[str] = field(default_factory=list)


def write_report_files(
    run_dir: str,
    metrics: Mapping,
    *,
    images_for_errors: np.ndarray | None = None,
    y_true: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    class_names: list[str] | None = None,
    trials: list[dict] | None = None,
    decision_markdown: str | None = None,
    history: list[dict] | None = None,
    best_params: dict | None = None,
    plot_cache: str | Path | None = None,
    display_dir: str | None = None,
) -> WrittenReport:
    """Write the plots and ``report.md`` into ``run_dir``; return them with the UI's markdown.

    ``images_for_errors`` ``(n, 28, 28)`` in [0, 1] with ``y_true``/``y_pred`` ``(n,)`` feed
    the misclassified grid; ``history`` (``EpochRecord.to_dict()`` list) the learning curves;
    ``class_names`` default to ``metrics["class_names"]``; ``best_params`` to the best
    finished trial's. ``plot_cache``: a folder keeping each plot's images under a hash of its
    data (None: draw every plot). ``display_dir``: the folder the report names.
    """
    out = Path(run_dir).resolve()
    shown = Path(display_dir).resolve() if display_dir else out
    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names or metrics.get("class_names") or [])
    if not names and metrics.get("confusion_matrix") is not None:
        names = [str(i) for i in range(len(metrics["confusion_matrix"]))]
    errors = None
    if images_for_errors is not None:
        if y_true is None or y_pred is None:
            raise plots.PlotError("images_for_errors needs y_true and y_pred as well")
        errors = (np.asarray(images_for_errors), np.asarray(y_true), np.asarray(y_pred))

    files: dict[str, str] = {}
    embedded: dict[str, str | None] = {}
    cache = None if plot_cache is None else Path(plot_cache)
    for name, spec in build_plots(metrics, names, history, errors, trials).items():
        filename = PLOTS[name][0]
        data, small = render(spec, cache, name)
        write_file(out / filename, data, shown)
        files[name] = filename
        embedded[name] = None
        if small is not None:
            embedded[name] = "data:image/png;base64," + base64.b64encode(small).decode("ascii")

    common = {"trials": trials, "best_params": best_params, "decision_markdown": decision_markdown}
    report_path = out / REPORT_FILENAME
    markdown = render_report(metrics, run_dir=str(shown), images=files, **common)
    write_file(report_path, markdown.encode("utf-8"), shown)
    ui_markdown = render_report(metrics, run_dir=str(shown), images=embedded, **common)
    listing = "".join(f"- `{shown / f}`\n" for f in [REPORT_FILENAME, *files.values()])
    ui_markdown += f"\n### Files\n\n{listing}"
    return WrittenReport(
        report_path,
        ui_markdown,
        list(files.values()),
        [name for name, data in embedded.items() if data is None],
    )
