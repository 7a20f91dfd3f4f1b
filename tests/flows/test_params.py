"""Flow parameter models: ranges checked at the boundary, best trial -> final hyperparameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.params import DataParams, PipelineOptions, SearchParams, TrainParams, parse_hidden
from nn.errors import ConfigError
from nn.train import TrainConfig


def test_defaults_are_valid_and_build_a_train_config():
    params = TrainParams()
    config = TrainConfig(**params.train_config())
    assert (config.epochs, config.lr, config.batch_size) == (params.epochs, params.lr, 128)
    assert "hidden" not in params.train_config() and "augment" not in params.train_config()
    DataParams()
    SearchParams()
    PipelineOptions()


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (TrainParams, "lr", 0.0),
        (TrainParams, "lr", -1.0),
        (TrainParams, "epochs", 0),
        (TrainParams, "momentum", 1.0),
        (TrainParams, "schedule", "linear"),
        (TrainParams, "hidden", [0]),
        (TrainParams, "hidden", []),
        (DataParams, "dataset", "cifar"),
        (DataParams, "val_size", -1),
        (DataParams, "train_size", 5),
        (SearchParams, "trials", 0),
        (SearchParams, "n_jobs", 0),
        (SearchParams, "backend", "threads"),
        (PipelineOptions, "margin", 1.0),
        (PipelineOptions, "final_epochs", 0),
        (PipelineOptions, "seed", -1),
    ],
)
def test_out_of_range_values_name_the_field(model, field, value):
    with pytest.raises(ValidationError) as info:
        model(**{field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="learning_rate"):
        TrainParams(learning_rate=0.1)


def test_cross_field_checks_use_the_train_config_rules():
    with pytest.raises(ValidationError, match="nesterov"):
        TrainParams(momentum=0.0, nesterov=True)
    with pytest.raises(ValidationError, match="warmup_epochs"):
        TrainParams(epochs=3, warmup_epochs=5)


def test_parse_hidden():
    assert parse_hidden("300") == [300]
    assert parse_hidden("500,100") == [500, 100]
    for bad in ("", "x", "300,-1", "0"):
        with pytest.raises(ConfigError, match="--hidden"):
            parse_hidden(bad)


def test_final_params_take_the_best_trial_with_the_final_epochs():
    from flows.pipeline import final_params

    best = {
        "lr": 0.05,
        "batch_size": 64,
        "optimizer": "sgd",
        "momentum": 0.0,
        "nesterov": True,
        "weight_decay": 1e-4,
        "schedule": "step",
        "decay": 0.5,
        "hidden": 200,
        "augment": "shift",
    }
    params = final_params(best, PipelineOptions(final_epochs=7, patience=3))
    assert (params.epochs, params.patience, params.lr, params.batch_size) == (7, 3, 0.05, 64)
    assert params.hidden == [200] and params.augment == "shift"
    assert params.nesterov is False  # meaningless without momentum, as in the trials
    forced = final_params(best, PipelineOptions(augment="none"))
    assert forced.augment == "none"


def test_tuned_final_params_add_the_recipe_to_the_searched_ones():
    from flows.pipeline import final_params

    best = {
        "lr": 0.08,
        "batch_size": 64,
        "optimizer": "sgd",
        "momentum": 0.7,
        "nesterov": False,
        "weight_decay": 1e-5,
        "schedule": "step",
        "decay": 0.5,
        "hidden": 300,
    }
    tuned = final_params(best, PipelineOptions(final_epochs=40), "fashion-mnist")
    assert (tuned.lr, tuned.batch_size, tuned.momentum, tuned.weight_decay) == (
        0.08,
        64,
        0.7,
        1e-5,
    )
    assert (tuned.schedule, tuned.warmup_epochs, tuned.nesterov, tuned.augment) == (
        "cosine",
        1,
        True,
        "affine",
    )
    assert tuned.decay is None and tuned.patience is None and tuned.epochs == 40
    digits = final_params(best, PipelineOptions(final_epochs=2), "idx")
    assert digits.augment == "elastic" and digits.warmup_epochs == 1  # cut to leave one epoch
    off = final_params(best, PipelineOptions(augment="none"), "mnist")
    assert off.augment == "none" and off.schedule == "cosine"
    searched = final_params(
        {**best, "augment": "shift", "augment_strength": "0.5"}, PipelineOptions(), "mnist"
    )
    assert searched.augment == "shift" and searched.augment_strength == 0.5
    as_is = final_params(best, PipelineOptions(final_recipe="search"), "mnist")
    assert (as_is.schedule, as_is.decay, as_is.nesterov, as_is.augment) == (
        "step",
        0.5,
        False,
        "none",
    )
