"""Training settings: each declared once, checked once, at creation.

:class:`Setting` declares one setting: its name, type, allowed range or choices,
default and help text. :data:`TRAINING` declares the settings of one training run;
:class:`TrainConfig` takes its defaults and its checks from it, and the layers above
derive their own forms from the same table (the flows' parameter models, the
command-line options and their ``--help``, the search space's bounds), so they
cannot disagree with what the network accepts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nn.errors import ConfigError
from nn.optim import OPTIMIZERS
from nn.schedules import SCHEDULES

__all__ = ["TRAINING", "ConfigError", "Setting", "TrainConfig"]


@dataclass(frozen=True)
class Setting:
    """One declared setting.

    Attributes
    ----------
    name:
        Python name (``batch_size``); the command line spells it ``--batch-size``.
    kind:
        ``int``, ``float``, ``bool``, ``str`` or ``list`` (a list of integers).
    default:
        The value used when none is given (``None``: unset, see ``none``).
    help:
        One line for ``--help`` and the Prefect UI form, without the default.
    low, high:
        Bounds of a number (of each item of a list); ``None``: unbounded.
    low_open, high_open:
        Whether the bound itself is excluded.
    choices:
        The allowed values of a ``str`` setting (empty: any text).
    none:
        What ``None`` means (``"off"``, ``"all"``, ``"auto"``...); empty: ``None``
        is not allowed.
    option:
        The command-line option when it is not the name's (``--out`` for ``out_dir``).
    """

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    none: str = ""
    option: str = ""

    @property
    def flag(self) -> str:
        """The command-line option: ``option`` if set, else ``--batch-size`` for ``batch_size``."""
        return self.option or "--" + self.name.replace("_", "-")

    def bounds(self) -> str:
        """The allowed values as text: ``[0, 1)``, ``>= 1`` or ``one of sgd, adam``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def check(self, value: Any) -> Any:
        """Return ``value`` if this setting accepts it, else raise naming the setting.

        Raises
        ------
        ConfigError
            ``"<name>=<value> must be ..."``.
        """
        if value is None:
            if self.none:
                return value
            raise ConfigError(f"{self.name}=None is not allowed; give a value")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name}={value!r} must be true or false")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(f"{self.name}={value!r} must be text")
            if self.choices and value not in self.choices:
                raise ConfigError(
                    f"{self.name}={value!r} is not allowed; choose one of {list(self.choices)}"
                )
        elif self.kind is list:
            if not isinstance(value, list | tuple) or not value:
                raise ConfigError(f"{self.name}={value!r} must be a non-empty list of integers")
            for item in value:
                self._number(item, int)
        else:
            self._number(value, self.kind)
        return value

    def _number(self, value: Any, kind: type) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            what = "an integer" if kind is int else "a finite number"
            raise ConfigError(f"{self.name}={value!r} must be {what}")
        if kind is int and not isinstance(value, int):
            raise ConfigError(f"{self.name}={value!r} must be an integer")
        if not math.isfinite(value) or not self._inside(value):
            raise ConfigError(f"{self.name}={value!r} must be {self._range_words()}")

    def _inside(self, x: float) -> bool:
        low_ok = self.low is None or (x > self.low if self.low_open else x >= self.low)
        high_ok = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return low_ok and high_ok

    def _range_words(self) -> str:
        text = self.bounds()
        return text if text.startswith(">") else f"in {text}"


def _int(name: str, default: Any, help: str, low: int, high: int | None, **kw: Any) -> Setting:
    return Setting(name, int, default, help, low, high, **kw)


def _float(name: str, default: Any, help: str, low: float, high: float, **kw: Any) -> Setting:
    return Setting(name, float, default, help, low, high, **kw)


_SETTINGS = (
    _int("epochs", 10, "passes over the training set", 1, 10000),
    _int("batch_size", 128, "minibatch size", 1, 65536),
    Setting("lr", float, 0.1, "initial learning rate", 0.0, None, low_open=True),
    Setting("optimizer", str, "sgd", "update rule", choices=OPTIMIZERS),
    _float("momentum", 0.9, "SGD momentum", 0.0, 1.0, high_open=True),
    Setting("nesterov", bool, False, "Nesterov momentum (SGD with momentum > 0)"),
    _float("weight_decay", 0.0, "L2 penalty on the weights", 0.0, 1.0),
    Setting("schedule", str, "constant", "learning-rate schedule", choices=SCHEDULES),
    _float(
        "decay", 0.5, "decay factor of the step and exponential schedules", 0.0, 1.0, low_open=True
    ),
    _int("step_size", 5, "epochs per step of the step schedule", 1, 10000),
    _int(
        "warmup_epochs",
        0,
        "epochs of linear learning-rate warm-up (fewer than the epochs)",
        0,
        10000,
    ),
    _int(
        "patience",
        None,
        "stop after this many epochs without a validation-loss gain, keeping the best weights",
        1,
        10000,
        none="off",
    ),
    _float(
        "min_delta",
        0.0,
        "smallest validation-loss drop that counts as a gain",
        0.0,
        math.inf,
        high_open=True,
    ),
    _float("beta1", 0.9, "Adam's first-moment decay", 0.0, 1.0, high_open=True),
    _float("beta2", 0.999, "Adam's second-moment decay", 0.0, 1.0, high_open=True),
    _float("epsilon", 1e-8, "Adam's denominator floor", 0.0, 1.0, low_open=True),
)

TRAINING: dict[str, Setting] = {setting.name: setting for setting in _SETTINGS}
"""The settings of one training run, in the order of :class:`TrainConfig`'s fields."""


def _default(name: str) -> Any:
    return TRAINING[name].default


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; see :data:`TRAINING` for each one's range and meaning.

    The objective adds ``weight_decay / 2 * ||W||^2``; ``decay`` multiplies the
    learning rate every ``step_size`` epochs (step) or every epoch (exponential);
    ``warmup_epochs`` must be fewer than ``epochs``; ``nesterov`` needs ``momentum > 0``;
    ``patience=None`` disables early stopping.
    """

    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    lr: float = _default("lr")
    optimizer: str = _default("optimizer")
    momentum: float = _default("momentum")
    nesterov: bool = _default("nesterov")
    weight_decay: float = _default("weight_decay")
    schedule: str = _default("schedule")
    decay: float = _default("decay")
    step_size: int = _default("step_size")
    warmup_epochs: int = _default("warmup_epochs")
    patience: int | None = _default("patience")
    min_delta: float = _default("min_delta")
    beta1: float = _default("beta1")
    beta2: float = _default("beta2")
    epsilon: float = _default("epsilon")

    def __post_init__(self) -> None:
        for setting in TRAINING.values():
            setting.check(getattr(self, setting.name))
        check_together(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Settings taken from a larger mapping (all hyperparameters of a run): only the
        keys of :data:`TRAINING` are read, each one must be there."""
        return cls(**{name: values[name] for name in TRAINING})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Settings from a dict such as :meth:`to_dict`'s; missing keys take their defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"training settings must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(TRAINING))
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}; allowed: {sorted(TRAINING)}")
        return cls(**data)


def check_together(values: dict[str, Any]) -> None:
    """The checks across settings: Nesterov needs momentum, the warm-up needs epochs after it.

    Raises
    ------
    ConfigError
        Naming the setting at fault and the one it depends on.
    """
    momentum = values.get("momentum", _default("momentum"))
    if values.get("nesterov") and momentum == 0.0:
        raise ConfigError(f"nesterov=True needs momentum > 0 (momentum={momentum})")
    epochs = values.get("epochs", _default("epochs"))
    warmup = values.get("warmup_epochs", _default("warmup_epochs"))
    if warmup >= epochs:
        raise ConfigError(
            f"warmup_epochs={warmup} must be in [0, {epochs - 1}] (fewer than epochs={epochs})"
        )
