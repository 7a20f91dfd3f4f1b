"""Settings of one training run: a frozen dataclass that checks its values once, at creation.

:data:`RULES` states what each field of :class:`TrainConfig` accepts (type, range or
choices); the layers above take their bounds from it. A refused value raises
:class:`SettingError`, which carries the setting's name, so the layer that knows how the
user spelled it (a command-line option, a flow parameter) can word the message.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nn.errors import ConfigError
from nn.optim import OPTIMIZERS
from nn.schedules import SCHEDULES

__all__ = ["RULES", "ConfigError", "Rule", "SettingError", "TrainConfig"]


class SettingError(ConfigError):
    """``value`` of the setting ``name`` is refused; ``rule`` says why (``"must be > 0"``)."""

    def __init__(self, name: str, value: Any, rule: str) -> None:
        super().__init__(f"{name}={value!r} {rule}")
        self.name, self.value, self.rule = name, value, rule

    def __reduce__(self) -> tuple[Any, ...]:  # a copy (a flow's state) keeps the fields
        return type(self), (self.name, self.value, self.rule)

    def worded(self, spell: Callable[[str, Any], str]) -> str:
        """The message with the setting spelled by ``spell(name, value)`` (``--lr -1``)."""
        return f"{spell(self.name, self.value)} {self.rule}"


@dataclass(frozen=True)
class Rule:
    """What one setting accepts: ``kind`` (``int``, ``float``, ``bool``, ``str`` or ``list``,
    a list of integers), bounds of a number (of each item of a list; ``None``: unbounded,
    ``*_open``: the bound excluded), ``choices`` of a text, and whether ``None`` is allowed."""

    name: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def bounds(self) -> str:
        """The allowed values as text: ``in [0, 1)``, ``>= 1`` or ``one of sgd, adam``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        low = "-inf" if self.low is None else f"{self.low:g}"
        opening, closing = "[("[self.low_open], "])"[self.high_open]
        return f"in {opening}{low}, {self.high:g}{closing}"

    def check(self, value: Any) -> Any:
        """Return ``value`` if this rule accepts it, else raise :class:`SettingError`."""
        if value is None and not self.optional:
            raise SettingError(self.name, value, "is not allowed; give a value")
        if value is None:
            return value
        if self.kind is bool and not isinstance(value, bool):
            raise SettingError(self.name, value, "must be true or false")
        if self.kind is str and not isinstance(value, str):
            raise SettingError(self.name, value, "must be text")
        if self.choices and value not in self.choices:
            raise SettingError(self.name, value, f"is not allowed; choose {self.bounds()}")
        if self.kind is list:
            if not isinstance(value, list | tuple) or not value:
                raise SettingError(self.name, value, "must be a non-empty list of integers")
            for item in value:
                self._number(item, int)
        elif self.kind in (int, float):
            self._number(value, self.kind)
        return value

    def _number(self, value: Any, kind: type) -> None:
        if isinstance(value, bool) or not isinstance(value, int if kind is int else int | float):
            raise SettingError(
                self.name, value, f"must be {'an integer' if kind is int else 'a number'}"
            )
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high = math.inf if self.high is None else self.high
        high_ok = value < high if self.high_open else value <= high
        if not (math.isfinite(value) and low_ok and high_ok):
            raise SettingError(self.name, value, f"must be {self.bounds()}")


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("epochs", int, 1, 10000),
        Rule("batch_size", int, 1, 65536),
        Rule("lr", float, 0.0, low_open=True),
        Rule("optimizer", str, choices=OPTIMIZERS),
        Rule("momentum", float, 0.0, 1.0, high_open=True),
        Rule("nesterov", bool),
        Rule("weight_decay", float, 0.0, 1.0),
        Rule("schedule", str, choices=SCHEDULES),
        Rule("decay", float, 0.0, 1.0, low_open=True),
        Rule("step_size", int, 1, 10000),
        Rule("warmup_epochs", int, 0, 10000),
        Rule("patience", int, 1, 10000, optional=True),
        Rule("min_delta", float, 0.0),
        Rule("beta1", float, 0.0, 1.0, high_open=True),
        Rule("beta2", float, 0.0, 1.0, high_open=True),
        Rule("epsilon", float, 0.0, 1.0, low_open=True),
    )
}
"""What each field of :class:`TrainConfig` accepts, in the order of the fields."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run, checked against :data:`RULES` at creation.

    ``epochs`` passes over the training set in minibatches of ``batch_size``; ``lr`` is the
    initial learning rate of the ``optimizer`` (``"sgd"``: ``momentum``, ``nesterov``
    needing ``momentum > 0``; ``"adam"``: ``beta1``, ``beta2``, ``epsilon``). The objective
    adds ``weight_decay / 2 * ||W||^2``. ``schedule`` shapes the learning rate after
    ``warmup_epochs`` of linear warm-up (fewer than ``epochs``): ``decay`` multiplies it every
    ``step_size`` epochs (step) or every epoch (exponential). ``patience`` epochs without a
    validation-loss drop of ``min_delta`` stop training, keeping the best weights (``None``:
    never).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    decay: float = 0.5
    step_size: int = 5
    warmup_epochs: int = 0
    patience: int | None = None
    min_delta: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        for rule in RULES.values():
            rule.check(getattr(self, rule.name))
        if self.nesterov and self.momentum == 0.0:
            raise SettingError("nesterov", True, "needs a momentum above 0")
        if self.warmup_epochs >= self.epochs:
            raise SettingError(
                "warmup_epochs",
                self.warmup_epochs,
                f"must be fewer than the epochs ({self.epochs})",
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The settings of a larger mapping (every hyperparameter of a run): each field's
        key must be there, other keys are ignored."""
        return cls(**{name: values[name] for name in RULES})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Settings from a dict such as :meth:`to_dict`'s; missing keys take their defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"training settings must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(RULES))
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}; allowed: {sorted(RULES)}")
        return cls(**data)
