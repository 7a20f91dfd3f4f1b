"""The hyperparameter search space, declared as data and sampled reproducibly.

A space maps parameter names to a :class:`Range` or a :class:`Choice`. Trial ``i`` of a
run seeded ``s`` draws from its own stream (:func:`trial_seeds`), so its parameters depend
only on ``(s, i)``, not on how many trials run. Known parameters (:data:`PARAMETERS`) are
checked against their declared ranges; any other name is an *extra* categorical
parameter passed to the trial untouched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nn.config import RULES, Rule
from nn.errors import ConfigError
from tasks.errors import SearchSpaceError
from tasks.settings import MODEL_RULES

__all__ = [
    "DEFAULT_SPACE",
    "PARAMETERS",
    "Choice",
    "Range",
    "SearchSpace",
    "trial_seeds",
]

Value = bool | int | float | str


@dataclass(frozen=True)
class Range:
    """Values between ``low`` and ``high`` (both included, ``low < high``, both positive when
    ``log``), uniform or log-uniform, real or ``integer``, exactly 0 with probability ``zero``
    in ``[0, 1)`` (an L2 penalty "off or 1e-6..1e-3")."""

    low: float
    high: float
    log: bool = False
    integer: bool = False
    zero: float = 0.0

    def draw(self, rng: np.random.Generator) -> float | int:
        """One value of the range, drawn with ``rng``."""
        if self.zero > 0 and rng.random() < self.zero:
            return 0 if self.integer else 0.0
        low, high = (self.low, self.high + 1) if self.integer else (self.low, self.high)
        if self.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        return min(int(value), int(self.high)) if self.integer else float(value)

    def describe(self) -> str:
        """The override syntax of this range, e.g. ``"0.001:0.3:log"``."""
        text = f"{self.low:g}:{self.high:g}"
        text += ":log" if self.log else ""
        text += ":int" if self.integer else ""
        return text + (f":zero={self.zero:g}" if self.zero > 0 else "")


@dataclass(frozen=True)
class Choice:
    """One of ``values``, drawn uniformly (a single value fixes the parameter)."""

    values: tuple[Value, ...]

    def draw(self, rng: np.random.Generator) -> Value:
        """One of the values, uniformly."""
        return self.values[int(rng.integers(len(self.values)))]

    def describe(self) -> str:
        """The override syntax, e.g. ``"64,128,256"``."""
        return ",".join(
            str(value).lower() if isinstance(value, bool) else str(value) for value in self.values
        )


Spec = Range | Choice


SEARCHABLE = (
    "lr",
    "batch_size",
    "optimizer",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "decay",
    "step_size",
    "warmup_epochs",
)
"""The training settings (:data:`nn.config.RULES`) a search space may vary."""

PARAMETERS: dict[str, Rule] = {
    **{name: RULES[name] for name in SEARCHABLE},
    "hidden": dataclasses.replace(MODEL_RULES["hidden"], kind=int),
}
"""Known parameters, with their declared ranges; ``hidden``: units of the hidden layer."""


def _check(name: str, param: Rule, value: Value) -> Value:
    """``value`` as ``param``'s type (``64.0`` -> ``64``), else a :class:`SearchSpaceError`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if param.kind is float:
            value = float(value)
        elif param.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
    try:
        return param.check(value)
    except ConfigError as exc:
        raise SearchSpaceError(f"search parameter {name!r}: {exc}") from None


DEFAULT_SPACE: dict[str, Spec] = {
    "lr": Range(1e-3, 0.3, log=True),
    "batch_size": Choice((32, 64, 128, 256)),
    "optimizer": Choice(("sgd",)),
    "momentum": Range(0.5, 0.95),
    "nesterov": Choice((False, True)),
    "weight_decay": Range(1e-6, 1e-3, log=True, zero=0.25),
    "schedule": Choice(("constant", "step", "exponential", "cosine")),
    "decay": Range(0.3, 0.9),
    "hidden": Choice((300,)),
}
"""The default space; ``hidden`` is fixed at 300 units unless overridden."""


def trial_seeds(seed: int, index: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The independent streams of trial ``index``: (sampling, training), the
    ``spawn_key=(index, 0)`` and ``(index, 1)`` children of ``SeedSequence(seed)``."""
    return (
        np.random.SeedSequence(seed, spawn_key=(index, 0)),
        np.random.SeedSequence(seed, spawn_key=(index, 1)),
    )


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: parameter name -> :class:`Range` or :class:`Choice`."""

    specs: Mapping[str, Spec]

    def __post_init__(self) -> None:
        for name, spec in self.specs.items():
            _validate(name, spec)

    @property
    def extras(self) -> tuple[str, ...]:
        """Names of the extra (unknown, categorical) parameters, sorted."""
        return tuple(sorted(name for name in self.specs if name not in PARAMETERS))

    def sample(self, seed: int, index: int) -> dict[str, Value]:
        """The parameters of trial ``index`` of a run seeded with ``seed`` (plain Python values).

        Raises
        ------
        SearchSpaceError
            If ``seed`` or ``index`` is negative.
        """
        if seed < 0 or index < 0:
            raise SearchSpaceError(f"seed and trial index must be >= 0, got {seed} and {index}")
        rng = np.random.default_rng(trial_seeds(seed, index)[0])
        return {name: _plain(name, self.specs[name].draw(rng)) for name in sorted(self.specs)}

    def describe(self) -> dict[str, str]:
        """Each parameter in override syntax, for logs and reports."""
        return {name: self.specs[name].describe() for name in sorted(self.specs)}


def _plain(name: str, value: Any) -> Value:
    """A numpy scalar as the Python type of its parameter."""
    if isinstance(value, np.generic):
        value = value.item()
    param = PARAMETERS.get(name)
    if param is not None and param.kind in (int, float) and not isinstance(value, bool):
        return param.kind(value)
    return value


def _validate(name: str, spec: Spec) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise SearchSpaceError(f"search parameter name {name!r} must be an identifier")
    param = PARAMETERS.get(name)
    if isinstance(spec, Choice):
        if not spec.values:
            raise SearchSpaceError(f"search parameter {name!r}: no values to choose from")
        for value in spec.values:
            if param is not None:
                _check(name, param, value)
            elif not isinstance(value, bool | int | float | str):
                raise SearchSpaceError(
                    f"search parameter {name!r}: value {value!r} must be a string, "
                    "number or true/false"
                )
        return
    if not isinstance(spec, Range):
        raise SearchSpaceError(f"search parameter {name!r}: {spec!r} is not a Range or Choice")
    if param is None:
        raise SearchSpaceError(
            f"search parameter {name!r} is not one of {', '.join(PARAMETERS)}; "
            "extra parameters must be a list of values, not a range"
        )
    if param.kind not in (int, float):
        raise SearchSpaceError(f"search parameter {name!r} takes a list of values, not a range")
    _validate_range(name, spec, param)


def _validate_range(name: str, spec: Range, param: Rule) -> None:
    if not (math.isfinite(spec.low) and math.isfinite(spec.high)) or not spec.low < spec.high:
        raise SearchSpaceError(
            f"search parameter {name!r}: range {spec.describe()} needs finite low < high"
        )
    if param.kind is int and not spec.integer:
        raise SearchSpaceError(f"search parameter {name!r} is an integer: use an integer range")
    if spec.log and spec.low <= 0:
        raise SearchSpaceError(
            f"search parameter {name!r}: log range {spec.describe()} needs low > 0 "
            "(use zero=P to include 0)"
        )
    if not 0.0 <= spec.zero < 1.0:
        raise SearchSpaceError(f"search parameter {name!r}: zero={spec.zero:g} must be in [0, 1)")
    for bound in (spec.low, spec.high):
        _check(name, param, int(bound) if spec.integer else bound)
    if spec.zero > 0:
        _check(name, param, 0)
