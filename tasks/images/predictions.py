"""A prediction for one image file and its outputs: text lines, JSON, CSV, artifact rows.

File names are shown as given, with control characters escaped so each stays on one line;
in the CSV, where a spreadsheet would run a cell that starts like a formula, every field
is quoted and a leading ``= + - @`` is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.errors import DataError
from tasks.files import write_text_atomic

CSV_NAME = "predictions.csv"
"""File name of the CSV written inside a scored folder when no other path is given."""

CSV_COLUMNS = ("file", "label", "probability", "error")


@dataclass(frozen=True)
class Prediction:
    """The outcome for one image ``file`` (as given or listed): the most likely ``label``
    and its ``probability``, ``top`` ``(label, probability)`` pairs most likely first, or
    the ``error`` why it could not be scored (label and probability None)."""

    file: str
    label: int | None = None
    probability: float | None = None
    top: tuple[tuple[int, float], ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (probabilities to 6 decimals; ``top`` as ``{"label",
        "probability"}`` objects)."""
        return {
            "file": self.file,
            "label": self.label,
            "probability": None if self.probability is None else round(self.probability, 6),
            "top": [{"label": k, "probability": round(p, 6)} for k, p in self.top],
            "error": self.error,
        }


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _one_line(text: str) -> str:
    """``text`` with each control or other unprintable character escaped (``\\n``,
    ``\\x1b``, ``\\udcff``), so it stays on one line and is valid UTF-8."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _ESCAPES.get(ch) or ascii(ch)[1:-1] for ch in text)


def format_text(predictions: Sequence[Prediction], top: int = 1) -> str:
    """One line per image (names escaped): ``file: label (probability)``, the top K with
    ``top > 1``."""
    lines = []
    for p in predictions:
        if p.error is not None:
            lines.append(f"{_one_line(p.file)}: error: {_one_line(p.error)}")
            continue
        line = f"{_one_line(p.file)}: {p.label} ({p.probability:.4f})"
        if top > 1:
            line += f"  top {top}: " + ", ".join(f"{k} ({q:.4f})" for k, q in p.top)
        lines.append(line)
    failed = sum(p.error is not None for p in predictions)
    if len(predictions) > 1 or failed:
        lines.append(f"scored {len(predictions) - failed} of {len(predictions)} images")
    return "\n".join(lines)


def format_json(predictions: Sequence[Prediction]) -> str:
    """A JSON list of :meth:`Prediction.to_dict` objects."""
    return json.dumps([p.to_dict() for p in predictions], indent=2)


def csv_cell(text: str) -> str:
    """``text`` made inert for spreadsheets (CSV injection): control characters escaped, so
    no new row starts, then a leading ``= + - @`` prefixed with ``'``."""
    text = _one_line(text)
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


def csv_text(predictions: Sequence[Prediction]) -> str:
    """CSV of :data:`CSV_COLUMNS` (empty cells when absent), every field quoted."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_COLUMNS)
    for p in predictions:
        prob = "" if p.probability is None else f"{p.probability:.6f}"
        label = "" if p.label is None else p.label
        writer.writerow([csv_cell(p.file), label, prob, csv_cell(p.error or "")])
    return buf.getvalue()


def write_csv(predictions: Sequence[Prediction], path: str | os.PathLike[str]) -> Path:
    """Write :func:`csv_text` to ``path`` atomically (temporary file + ``os.replace``)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise DataError(f"{target}: cannot write the CSV, folder {target.parent} does not exist")
    try:
        write_text_atomic(target, csv_text(predictions), fsync=False)
    except OSError as exc:
        raise DataError(f"{target}: cannot write the CSV: {exc.strerror or exc}") from exc
    return target


def skipped_note(folder: Path) -> str:
    """Why a subfolder was not scored, on one line."""
    return f"skipped {_one_line(str(folder))}/: a subfolder, not searched (give it as an input)"


def artifact_rows(predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
    """Rows of the table artifact: file (str), label (int | None), probability, error (str)."""
    return [
        {
            "file": p.file,
            "label": p.label,
            "probability": None if p.probability is None else round(p.probability, 4),
            "error": p.error or "",
        }
        for p in predictions
    ]
