"""Tables a person reads: markdown tables, and table rows made to fit a screen.

:func:`tidy_columns` orders the columns of a table artifact (what was tuned first) and
leaves out those that hold one value in every row, which it returns apart so a caption
can name them; :func:`parameters_used_lines` renders the "parameters used" table of a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["markdown_table", "parameters_used_lines", "tidy_columns"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown lines of a table; cells are given as text (see ``report._cell``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def tidy_columns(
    rows: Sequence[Mapping[str, Any]], first: Iterable[str] = (), keep: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows with the columns of ``first`` leading and the constant columns left out.

    Works on whatever columns the rows have: ``first`` and ``keep`` name columns that
    may be missing. A column is constant when every row has the same value in it (a
    column some rows lack is not); with a single row nothing is constant.

    Parameters
    ----------
    rows:
        Table rows, column name -> value.
    first:
        Columns to put first, in this order (e.g. ``trial`` then the tuned parameters).
    keep:
        Columns shown even when constant (the tuned parameters, the score).

    Returns
    -------
    (rows, constants)
        The rows with the columns reordered (``first``, then the others in the order they
        appear) and the constant columns left out; ``constants`` maps each column left out
        to its one value.
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

    def cell(value: object) -> str:
        text = "—" if value is None or value == "" else " ".join(str(value).split())
        return text.replace("|", "\\|")

    body = [[f"`{cell(r['parameter'])}`", cell(r["value"]), cell(r["source"])] for r in rows]
    return markdown_table(["parameter", "value", "source"], body)
