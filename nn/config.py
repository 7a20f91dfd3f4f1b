"""Training settings: one frozen dataclass that checks its ranges once, at creation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from nn.errors import ConfigError
from nn.schedules import SCHEDULES

OPTIMIZERS = ("sgd", "adam")


def _int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r} must be an integer")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name}={value!r} must be {allowed}")


def _float(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number")
    if (value <= low if low_open else value < low) or (
        value >= high if high_open else value > high
    ):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(f"{name}={value!r} must be in {lo}{low}, {high}{hi}")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes
    ----------
    epochs: passes over the training set, >= 1.
    batch_size: rows per minibatch, >= 1.
    lr: base learning rate, finite and > 0.
    optimizer: ``"sgd"`` or ``"adam"``.
    momentum: SGD momentum in [0, 1).
    nesterov: use Nesterov momentum (SGD with momentum > 0).
    weight_decay: L2 coefficient ``lambda`` >= 0 (objective adds ``lambda / 2 * ||W||^2``).
    schedule: ``"constant"``, ``"step"``, ``"exponential"`` or ``"cosine"``.
    decay: multiplier in (0, 1] per ``step_size`` epochs (step) or per epoch (exponential).
    step_size: epochs between decays of the step schedule, >= 1.
    warmup_epochs: epochs of linear warm-up, in [0, epochs).
    patience: early stopping after this many epochs without a validation-loss
        improvement (then the best weights are restored); None disables it.
    min_delta: an improvement must lower the validation loss by more than this, >= 0.
    beta1, beta2, epsilon: Adam's constants.
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
        _int("epochs", self.epochs, 1)
        _int("batch_size", self.batch_size, 1)
        _float("lr", self.lr, 0.0, math.inf, low_open=True, high_open=True)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _float("momentum", self.momentum, 0.0, 1.0, high_open=True)
        if not isinstance(self.nesterov, bool):
            raise ConfigError(f"nesterov={self.nesterov!r} must be true or false")
        if self.nesterov and self.momentum == 0.0:
            raise ConfigError("nesterov=True needs momentum > 0 (momentum=0.0)")
        _float("weight_decay", self.weight_decay, 0.0, 1.0)
        _choice("schedule", self.schedule, SCHEDULES)
        _float("decay", self.decay, 0.0, 1.0, low_open=True)
        _int("step_size", self.step_size, 1)
        _int("warmup_epochs", self.warmup_epochs, 0, self.epochs - 1)
        if self.patience is not None:
            _int("patience", self.patience, 1)
        _float("min_delta", self.min_delta, 0.0, math.inf, high_open=True)
        _float("beta1", self.beta1, 0.0, 1.0, high_open=True)
        _float("beta2", self.beta2, 0.0, 1.0, high_open=True)
        _float("epsilon", self.epsilon, 0.0, 1.0, low_open=True)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Settings from a dict such as :meth:`to_dict`'s; missing keys take their defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"training settings must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}; allowed: {sorted(known)}")
        return cls(**data)
