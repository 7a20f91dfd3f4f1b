"""The search anchored on the dataset's recipe: its space, its shared settings, its trial.

A search that may end worse than the fixed recipe does not pay for itself, so the space
is centred on the recipe (:func:`recipe_space`), every trial trains like the final model
(:func:`trial_base`) and the recipe itself is a trial (:func:`recipe_point`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tasks.settings import scaled_warmup
from tasks.tuning.space import Choice, Range, SearchSpace, Spec, Value

__all__ = ["STRENGTHS", "recipe_point", "recipe_space", "trial_base"]

STRENGTHS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25)
"""Augmentation strengths the default space tries (1: the recipe's)."""

SHARED = ("optimizer", "momentum", "nesterov", "schedule", "decay", "step_size", "augment")
"""The recipe's settings every trial takes as they are (unless the space varies them)."""


def recipe_space(recipe: Mapping[str, Any]) -> dict[str, Spec]:
    """The default search space around ``recipe`` (a :func:`tasks.settings.recipe_for` dict):
    learning rate from a third to three times the recipe's (log), weight decay from a tenth
    to ten times, the batch size with its half and double, augmentation strength around 1."""
    lr, wd, batch = float(recipe["lr"]), float(recipe["weight_decay"]), int(recipe["batch_size"])
    specs: dict[str, Spec] = {
        "lr": Range(lr / 3, min(lr * 3, 10.0), log=True),
        "weight_decay": Range(wd / 10, min(wd * 10, 1.0), log=True)
        if wd > 0
        else Range(1e-6, 1e-3, log=True, zero=0.5),
        "batch_size": Choice(tuple(sorted({max(1, batch // 2), batch, batch * 2}))),
        "hidden": Choice((int(recipe["hidden"][0]),)),
    }
    if recipe.get("augment", "none") != "none":
        specs["augment_strength"] = Choice(STRENGTHS)
    return specs


def trial_base(recipe: Mapping[str, Any], horizon: int) -> dict[str, Value]:
    """The settings every trial shares: the recipe's, its warm-up scaled to ``horizon`` epochs
    (:func:`tasks.settings.scaled_warmup`)."""
    base: dict[str, Value] = {key: recipe[key] for key in SHARED if key in recipe}
    base["warmup_epochs"] = scaled_warmup(recipe, horizon)
    base["hidden"] = int(recipe["hidden"][0])
    return base


def _recipe_value(name: str, recipe: Mapping[str, Any]) -> Any:
    if name == "hidden":
        return int(recipe["hidden"][0])
    if name == "augment_strength":
        return float(recipe.get("augment_strength", 1.0))
    return recipe.get(name)


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def _contains(spec: Spec, value: Any) -> bool:
    if isinstance(spec, Choice):
        return any(_same(value, choice) for choice in spec.values)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if value == 0 and spec.zero > 0:
        return True
    tolerance = 1e-9 * max(abs(spec.low), abs(spec.high))
    return spec.low - tolerance <= value <= spec.high + tolerance


def recipe_point(
    space: SearchSpace, recipe: Mapping[str, Any]
) -> tuple[dict[str, Value] | None, str | None]:
    """The recipe as a point of ``space`` (each value in the space's type), ``None`` if absent,
    with ``None`` or the reason it is out: ``"lr=0.05 is outside 0.001:0.01:log"``."""
    point: dict[str, Value] = {}
    for name in sorted(space.specs):
        spec, value = space.specs[name], _recipe_value(name, recipe)
        if value is None or not _contains(spec, value):
            return None, f"{name}={value} is outside {spec.describe()}"
        if isinstance(spec, Choice):  # the choice's own value and type ("1.0" or 1.0)
            value = next(choice for choice in spec.values if _same(value, choice))
        point[name] = value
    return point, None
