"""Every change of champion, kept in an append-only history; promote and roll back by hand.

``root/history.jsonl`` holds one JSON object a line, oldest first, only ever appended to
(under the registry's lock, atomically)::

    {"time", "dataset", "version", "previous", "action", "reason"}

``action`` is ``"auto"`` (a retraining run beat the champion), ``"approved"`` (a person
approved the promotion; the reason says "approved by NAME"), ``"promote"`` (``mnist-flow
models promote``) or ``"rollback"`` (``mnist-flow models rollback``). A rollback replays
the history as a stack (each promotion pushes, each rollback pops) and returns to the
champion the current one replaced. A damaged line (torn by a kill, edited by hand) is
skipped with a warning, and a rollback trusts the champion pointer over the history.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from tasks.errors import RegistryError
from tasks.files import write_bytes_atomic, write_json_atomic
from tasks.registry.files import now, read_json
from tasks.registry.promotion import ModelVersion, PromotionDecision, SameSetScores

logger = logging.getLogger(__name__)
HISTORY_FILE = "history.jsonl"
ACTIONS = ("auto", "approved", "promote", "rollback")


def history_path(root: Path) -> Path:
    """The history file of the registry at ``root``."""
    return Path(root) / HISTORY_FILE


def read_history(root: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """The changes of champion (of ``dataset`` if given), oldest first; damaged lines are
    skipped, with one warning naming the file and the line numbers."""
    path = history_path(root)
    if not path.is_file():
        return []
    entries, damaged = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            entry = json.loads(raw)
            if not (isinstance(entry, dict) and entry.get("action") in ACTIONS):
                raise ValueError("not a change of champion")
            if not all(isinstance(entry.get(key), str) for key in ("dataset", "version")):
                raise ValueError("no dataset or version")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if raw.strip():
                damaged.append(f"{number} ({exc})")
            continue
        if dataset is None or entry["dataset"] == dataset:
            entries.append(entry)
    if damaged:
        logger.warning(
            "%s: skipped %d damaged line%s: %s",
            path, len(damaged), "s" if len(damaged) > 1 else "", ", ".join(damaged[:5]),
        )  # fmt: skip
    return entries


def change_champion(
    registry: Any, version: ModelVersion, *, previous: str | None, action: str, reason: str
) -> dict[str, Any]:
    """Point ``version``'s dataset at it and append the change (call with the lock held); a
    :class:`RegistryError` if the pointer or the history cannot be written (nothing changes)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    entry = {
        "time": now(),
        "dataset": version.dataset,
        "version": version.version,
        "previous": previous,
        "action": action,
        "reason": reason,
    }
    pointer = registry.pointer_path(version.dataset)
    path = history_path(registry.root)
    before = pointer.read_bytes() if pointer.exists() else None
    try:
        old = path.read_bytes() if path.is_file() else b""
        if old and not old.endswith(b"\n"):  # a torn last line stays a line of its own
            old += b"\n"
        write_json_atomic(
            pointer,
            {
                "version": version.version,
                "test_accuracy": version.test_accuracy,
                "dataset": version.dataset,
                "promoted_at": entry["time"],
            },
        )
    except OSError as exc:
        raise RegistryError(
            f"could not write champion pointer {pointer}: {exc}; the champion is unchanged"
        ) from exc
    try:
        write_bytes_atomic(path, old + json.dumps(entry, sort_keys=True).encode() + b"\n")
    except OSError as exc:  # no change of champion without its line in the history
        if before is None:
            pointer.unlink(missing_ok=True)
        else:
            write_bytes_atomic(pointer, before)
        raise RegistryError(
            f"could not append to {path}: {exc}; the champion is unchanged"
        ) from exc
    return entry


def _current(registry: Any, dataset: str) -> str | None:
    pointer = registry.pointer_path(dataset)
    return read_json(pointer, "champion pointer")["version"] if pointer.exists() else None


def _sound(registry: Any, version: str, what: str) -> ModelVersion:
    """The registered ``version``, unless its files are broken."""
    target = registry.get(version)
    if why := registry.broken(target):
        raise RegistryError(f"{target.version} is broken ({why}); cannot {what} it")
    return target


def promote(registry: Any, version: str, reason: str = "", force: bool = False) -> dict[str, Any]:
    """Make ``version`` the champion of its dataset by hand; return the history entry.

    A :class:`RegistryError` for no registry, an unknown or broken version, the champion
    already, or (unless ``force``) a lower test accuracy than the champion's.
    """
    with registry.locked(create=False):
        target = _sound(registry, version, "promote")
        champion = registry.sound_champion(target.dataset)
        if champion is not None and champion.version == target.version:
            raise RegistryError(f"{target.version} is already the champion of {target.dataset}")
        if champion is not None and target.test_accuracy < champion.test_accuracy and not force:
            raise RegistryError(
                f"{target.version} (test accuracy {target.test_accuracy:.4f}) is worse than "
                f"the champion {champion.version} ({champion.test_accuracy:.4f}); "
                "--force promotes it anyway"
            )
        return change_champion(
            registry,
            target,
            previous=_current(registry, target.dataset),
            action="promote",
            reason=reason or "promoted by hand",
        )


def promote_approved(
    registry: Any, version: str, margin: float, scores: SameSetScores | None, note: str
) -> PromotionDecision:
    """Apply the promotion rule to ``version`` after a person approved it; ``note`` (who
    approved and why) ends the decision's reason and its history line."""
    with registry.locked():
        challenger = registry.get(version)
        decision = registry.apply_rule(challenger, margin, scores)
        decision = replace(decision, reason=f"{decision.reason}; {note}")
        if decision.promoted:
            change_champion(registry, challenger, previous=decision.champion_version,
                            action="approved", reason=decision.reason)  # fmt: skip
    return decision


def champion_stack(entries: list[dict[str, Any]], current: str | None) -> list[str]:
    """The champions a rollback goes back through, oldest first, ending with ``current``:
    ``entries`` replayed, then cut after the last ``current`` (the pointer), or ``current``
    pushed when the history lost its line."""
    stack: list[str] = []
    for entry in entries:
        if entry["action"] == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(entry["version"])
    if current in stack:
        return stack[: len(stack) - stack[::-1].index(current)]
    return [*stack, current] if current is not None else stack


def rollback(registry: Any, dataset: str, reason: str = "") -> dict[str, Any]:
    """Make the champion that the current one replaced the champion again; a
    :class:`RegistryError` for no registry, no earlier champion, or a broken one."""
    with registry.locked(create=False):
        current = _current(registry, dataset)
        stack = champion_stack(read_history(registry.root, dataset), current)
        if len(stack) < 2:
            raise RegistryError(
                f"registry {registry.root}: no earlier champion of {dataset} to roll back to "
                f"(champion: {current or 'none'})"
            )
        return change_champion(
            registry,
            _sound(registry, stack[-2], "roll back to"),
            previous=current,
            action="rollback",
            reason=reason or f"rolled back from {current} by hand",
        )


def lineage(registry: Any, versions: list[ModelVersion]) -> dict[str, str]:
    """Version -> the data version it trained on (``metrics.json``'s ``data_version``)."""
    found = {}
    for v in versions:
        path = v.path.parent / "metrics.json"
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("data_version", "base")
        except (OSError, ValueError):
            value = "?"
        found[v.version] = str(value)
    return found


def format_history(entries: list[dict[str, Any]]) -> str:
    """The history as a plain-text table for ``mnist-flow models --history``."""
    if not entries:
        return "no change of champion yet"
    rows = [("TIME (UTC)", "DATASET", "CHAMPION", "BEFORE", "HOW", "REASON")]
    for e in entries:
        time = e["time"][:19].replace("T", " ")
        rows.append((time, e["dataset"], e["version"], e["previous"] or "-", e["action"],
                     e["reason"]))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
        for r in rows
    )
