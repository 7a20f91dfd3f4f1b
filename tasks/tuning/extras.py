"""Extra search parameters turned into ``nn.train.train`` options (pure, picklable).

The search passes any parameter it does not know to an *extras handler* run in the
trial's worker; :func:`augment_extras` turns ``augment`` and ``augment_strength`` into
the dataset's augmenter (:func:`tasks.fitting.augment.default_augment`), as the final
model gets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nn.errors import ConfigError
from tasks.errors import SearchSpaceError
from tasks.fitting.augment import default_augment, make_augmenter
from tasks.tuning.space import PARAMETERS

KNOWN_EXTRAS = ("augment", "augment_strength")


def dataset_name(data: Any) -> str:
    """The dataset name of a ``PreparedData`` or ``TrialArrays`` (both have ``name``)."""
    name = getattr(data, "name", None)
    if not isinstance(name, str):
        raise ConfigError(f"cannot tell the dataset of {type(data).__name__}")
    return name


def check_extra_names(names: Iterable[str]) -> None:
    """Refuse, before any trial runs, extra search parameters :func:`augment_extras` ignores.

    Raises
    ------
    SearchSpaceError
        Naming the unknown parameters, the known ones and the extras allowed.
    """
    unknown = sorted(set(names) - set(PARAMETERS) - set(KNOWN_EXTRAS))
    if unknown:
        raise SearchSpaceError(
            f"unknown search parameter(s) {', '.join(unknown)}; known: "
            f"{', '.join([*PARAMETERS, *KNOWN_EXTRAS])}"
        )


def augment_extras(extras: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """``{"augment": augmenter or None}`` from the extra parameters of one trial.

    Raises
    ------
    ConfigError
        For an extra parameter other than those of :data:`KNOWN_EXTRAS`, an unknown
        augmentation kind or a strength outside [0, 3].
    """
    unknown = sorted(set(extras) - set(KNOWN_EXTRAS))
    if unknown:
        raise ConfigError(
            f"unknown search parameter(s) {', '.join(unknown)}; extras allowed: "
            f"{', '.join(KNOWN_EXTRAS)}"
        )
    kind = str(extras.get("augment", "none"))
    strength = augment_strength(extras.get("augment_strength", 1.0))
    return {"augment": make_augmenter(default_augment(dataset_name(data), kind, strength))}


def augment_strength(value: Any) -> float:
    """``value`` (a number or numeric text from a search space) as a float strength.

    Raises
    ------
    ConfigError
        If ``value`` is not a number.
    """
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"augment_strength={value!r} must be a number in [0, 3]") from None
