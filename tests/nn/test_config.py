"""TrainConfig validation: every bad value names its field."""

from __future__ import annotations

import json

import pytest

from nn.errors import ConfigError
from nn.train import TrainConfig

BAD = [
    ("epochs", 0),
    ("epochs", 2.5),
    ("epochs", True),
    ("batch_size", 0),
    ("lr", 0.0),
    ("lr", -0.1),
    ("lr", float("inf")),
    ("lr", "0.1"),
    ("optimizer", "rmsprop"),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("nesterov", 1),
    ("weight_decay", -1e-4),
    ("schedule", "linear"),
    ("decay", 0.0),
    ("decay", 1.5),
    ("step_size", 0),
    ("warmup_epochs", -1),
    ("warmup_epochs", 10),
    ("patience", 0),
    ("min_delta", -1.0),
    ("beta1", 1.0),
    ("beta2", -0.5),
    ("epsilon", 0.0),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_bad_value_raises_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=rf"^{field}="):
        TrainConfig(**{field: value})


def test_nesterov_without_momentum_is_rejected():
    with pytest.raises(ConfigError, match="nesterov"):
        TrainConfig(nesterov=True, momentum=0.0)


def test_defaults_and_round_trip_through_json():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer, cfg.momentum) == (
        10,
        128,
        0.1,
        "sgd",
        0.9,
    )
    assert cfg.patience is None and cfg.schedule == "constant" and cfg.warmup_epochs == 0
    custom = TrainConfig(epochs=4, schedule="cosine", warmup_epochs=1, patience=2, nesterov=True)
    again = TrainConfig.from_dict(json.loads(json.dumps(custom.to_dict())))
    assert again == custom
    assert TrainConfig.from_dict({"lr": 0.05}) == TrainConfig(lr=0.05)


def test_from_dict_rejects_unknown_keys_and_non_mappings():
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_dict([("lr", 0.1)])


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TrainConfig().lr = 1.0  # type: ignore[misc]
