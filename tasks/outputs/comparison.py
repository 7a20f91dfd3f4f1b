"""The report's "tuned against the recipe" section: what the search kept, and why, from
``metrics["search"]``'s ``choice`` (:func:`tasks.tuning.choice.choose`) and ``final_start``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["comparison_lines"]


def _percent(value: object) -> str:
    return "—" if value is None else f"{100 * float(value):.2f} %"  # type: ignore[arg-type]


def comparison_lines(
    search: Mapping | None, test_accuracy: float | None, plot: Callable | None = None
) -> list[str]:
    """Markdown lines of the section (none without a search that recorded its choice),
    then the search's plots drawn by ``plot(name)`` (the report's plot lines)."""
    plots = [
        line
        for name in ("history", "parallel", "search", "trial_curves")
        for line in (plot(name) if plot else [])
    ]
    choice = (search or {}).get("choice")
    if not choice:
        return plots
    lines = ["", "## Tuned against the recipe", ""]
    excluded = choice.get("recipe_excluded")
    if excluded:
        lines += [
            f"**The search space leaves the dataset's recipe out** ({excluded}), so the recipe "
            "was not one of the trials and nothing here compares with it.",
            "",
        ]
    rows = []
    for name, label in (("reference", "the recipe (trial 0)"), ("top", "best trial")):
        entry = choice.get(name)
        if entry is None or (name == "top" and rows and entry["trial"] == 0):
            continue
        rows.append(
            f"| {label} | {entry['trial']} | {entry['epochs']} | "
            f"{_percent(entry.get('val_accuracy'))} | {_percent(entry.get('test_accuracy'))} |"
        )
    if rows:
        lines += [
            "| model | trial | epochs | validation accuracy | test accuracy |",
            "|---|---|---|---|---|",
            *rows,
            f"| final model ({'the recipe' if choice.get('chosen') == 'recipe' else 'tuned'}) "
            f"| — | — | — | {_percent(test_accuracy)} |",
            "",
            "The trials' test accuracies are for this comparison only: the choice was made on "
            "the validation split.",
            "",
        ]
    chosen = "the recipe" if choice.get("chosen") == "recipe" else "the best trial"
    lines.append(f"Kept {chosen}: {choice.get('reason', '')}.")
    if search and search.get("final_start"):
        lines += ["", f"The final model was {search['final_start']}."]
    return lines + plots
