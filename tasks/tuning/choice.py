"""Which trial the search keeps: the best one, or the recipe unless a trial clearly beats it.

A trial replaces the recipe only when it beats the recipe's validation accuracy ``p`` by
more than its standard error ``sqrt(p (1 - p) / n)`` on ``n`` images, so the search does
not trade a measured recipe for a lucky draw. Test accuracies are for the report only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nn.errors import ModelFileError
from nn.io import load_model

__all__ = ["choose", "score_on_test"]


def _entry(result: Any) -> dict[str, Any]:
    return {
        "trial": int(result.trial),
        "params": dict(result.params),
        "val_accuracy": float(result.best_val_accuracy),
        "epochs": int(result.epochs),
    }


def choose(final: list[Any], top: Any, has_reference: bool, n_val: int) -> tuple[Any, dict]:
    """The trial to keep among ``final`` (the last round's ``ok`` trial results) and why.

    ``top`` is the best of them, ``has_reference`` whether trial 0 is the recipe, ``n_val``
    the validation images. Returns ``(result, choice)``: ``choice`` has ``chosen``
    (``"recipe"`` or ``"tuned"``), ``reason`` (one sentence), ``margin`` (the gain needed),
    ``top`` and ``reference`` (trial, params, validation accuracy, epochs; ``reference``
    None when the recipe was not in the last round).
    """
    reference = next((r for r in final if r.trial == 0), None) if has_reference else None
    choice: dict[str, Any] = {"top": _entry(top), "reference": None, "margin": 0.0}
    if reference is None:
        why = "the recipe is not a trial" if not has_reference else "the recipe trial failed"
        choice.update(chosen="tuned", reason=f"trial {top.trial} is the best; {why}")
        return top, choice
    p = float(reference.best_val_accuracy)
    margin = math.sqrt(max(p * (1 - p), 0.0) / max(n_val, 1))
    gain = float(top.best_val_accuracy) - p
    choice.update(reference=_entry(reference), margin=margin)
    if top is reference:
        choice.update(chosen="recipe", reason="the recipe is the best trial")
        return reference, choice
    stays = gain <= margin
    reason = (
        f"trial {top.trial} beat the recipe by {100 * gain:.2f} points, "
        f"{'not ' if stays else ''}more than one standard error of the validation accuracy "
        f"({100 * margin:.2f} points){': the recipe stays' if stays else ''}"
    )
    choice.update(chosen="recipe" if stays else "tuned", reason=reason)
    return (reference if stays else top), choice


def score_on_test(
    checkpoints: Any, last: Mapping[int, Any], choice: Mapping[str, Any], data: Any
) -> dict[str, Any]:
    """Add ``test_accuracy`` to ``choice``'s ``top`` and ``reference`` (for the report only).

    ``last`` maps trial index -> its ``TrialSpec`` of the last round; a checkpoint that is
    missing (trials reused from the store have none), or data without a test split
    (``load_test``), leaves the entry without a test accuracy. The test split is read
    only once a checkpoint is found.
    """
    test: tuple[Any, Any] | None = None
    updates: dict[str, Any] = {}
    for name in ("top", "reference"):
        entry = choice.get(name)
        if entry is None or entry["trial"] not in last or not hasattr(data, "load_test"):
            continue
        spec = last[entry["trial"]]
        try:
            model, _ = load_model(checkpoints.path(spec, spec.epochs))
        except ModelFileError:
            continue
        test = test or data.load_test()
        _, accuracy = model.evaluate(*test)
        updates[name] = {**entry, "test_accuracy": float(accuracy)}
    return updates


def final_start(
    final: Mapping[str, Any],
    trial: Mapping[str, Any] | None,
    on_split: bool,
    checkpoint: str | None,
) -> tuple[str | None, str]:
    """Whether the final model continues the chosen trial: ``(checkpoint or None, why)``.

    It does only when the final training is that trial's run carried on: the same
    training images (the search's split, ``on_split``) and every setting equal (the
    epochs included, so the schedule is the same), with the trial's checkpoint at hand.
    """
    if not on_split:
        return None, (
            "retrained from the start on every training image (the trials held the "
            "validation split out)"
        )
    if trial is None:
        return None, "retrained from the start (the search was not anchored on the recipe)"
    differ = [key for key in final if key in trial and final[key] != trial[key]]
    if differ:
        shown = ", ".join(f"{key} {trial[key]} -> {final[key]}" for key in differ[:3])
        return None, f"retrained from the start: its settings differ from the trial's ({shown})"
    if checkpoint is None:
        return None, "retrained from the start: the trial's checkpoint was not kept"
    return checkpoint, (
        f"continued from the chosen trial's checkpoint after epoch {trial['epochs']} of "
        f"{final['epochs']} (the same settings, schedule and training images)"
    )
