"""The settings' rules, the recipes and the one merge of recipe, trial and user options."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nn.config import RULES, Rule, SettingError, TrainConfig
from nn.errors import ConfigError
from tasks.data.datasets import DATASETS
from tasks.settings import (
    DEFAULTS,
    HYPER,
    MODEL_RULES,
    RECIPE_KEYS,
    RECIPES,
    default_val_size,
    final_params,
    recipe_for,
    recipe_help,
    resolve,
    train_params,
)
from tasks.tuning.space import DEFAULT_SPACE, PARAMETERS, SearchSpace


def test_train_config_fields_are_the_ruled_settings_and_the_defaults_pass():
    fields = [field.name for field in dataclasses.fields(TrainConfig)]
    assert fields == list(RULES) and list(HYPER) == [*RULES, *MODEL_RULES]
    for name, value in DEFAULTS.items():
        assert {**RULES, **MODEL_RULES}[name].check(value) == value, name


def test_search_space_bounds_are_the_ruled_ones():
    for name in set(PARAMETERS) - {"hidden"}:
        assert PARAMETERS[name] is RULES[name]
    hidden = MODEL_RULES["hidden"]
    assert (PARAMETERS["hidden"].low, PARAMETERS["hidden"].high) == (hidden.low, hidden.high)
    SearchSpace(DEFAULT_SPACE)  # the default space lies inside the declared ranges


@pytest.mark.parametrize(
    ("rule", "value", "message"),
    [
        (RULES["lr"], 0.0, r"^lr=0.0 must be > 0$"),
        (RULES["momentum"], 1.0, r"^momentum=1.0 must be in \[0, 1\)$"),
        (RULES["decay"], 0.0, r"^decay=0.0 must be in \(0, 1\]$"),
        (RULES["epochs"], 2.0, r"^epochs=2.0 must be an integer$"),
        (RULES["nesterov"], 1, r"^nesterov=1 must be true or false$"),
        (RULES["schedule"], "linear", r"^schedule='linear' is not allowed; choose one of"),
        (RULES["schedule"], 3, r"^schedule=3 must be text$"),
        (RULES["epochs"], None, r"^epochs=None is not allowed"),
        (MODEL_RULES["hidden"], [300, 0], r"^hidden=0 must be in \[1, 8192\]$"),
        (MODEL_RULES["hidden"], [], r"^hidden=\[\] must be a non-empty list"),
    ],
)
def test_a_bad_value_is_named_with_its_range(rule: Rule, value, message):
    with pytest.raises(SettingError, match=message) as info:
        rule.check(value)
    assert info.value.name == rule.name  # what each place spells its own way


def test_recipe_for_every_dataset_trains():
    for dataset in DATASETS:
        for recipe in RECIPES:
            values = recipe_for(dataset, recipe)
            assert tuple(values) == RECIPE_KEYS
            resolve(values, explicit=[key for key in values if key in HYPER])


def test_the_plain_recipe_is_plain_sgd_and_the_same_everywhere():
    plain = {name: recipe_for(name, "plain") for name in DATASETS}
    assert all(values == plain["mnist"] for values in plain.values())
    values = plain["mnist"]
    assert (values["momentum"], values["schedule"], values["weight_decay"]) == (0.0, "constant", 0)
    assert values["augment"] == "none" and values["standardize"] is False


def test_fashion_changes_the_digits_recipe_only_where_its_table_says():
    digits, fashion = recipe_for("mnist"), recipe_for("fashion-mnist")
    changed = {key for key in digits if digits[key] != fashion[key]}
    assert changed == {"weight_decay", "warmup_epochs", "augment"}
    assert recipe_for("idx") == digits


def test_recipe_for_returns_a_fresh_copy_and_rejects_unknown_names():
    recipe_for("mnist")["hidden"].append(5)
    assert recipe_for("mnist")["hidden"] == [300]
    with pytest.raises(ConfigError, match="recipe='fancy'"):
        recipe_for("mnist", "fancy")
    with pytest.raises(ConfigError, match="cifar"):
        recipe_for("cifar")


def test_recipe_help_names_each_datasets_default():
    decay = recipe_help("weight_decay")
    for dataset in DATASETS:
        assert f"{recipe_for(dataset)['weight_decay']} for " in decay
    assert decay.endswith(f"; plain recipe: {recipe_for('mnist', 'plain')['weight_decay']}")
    plain_epochs = recipe_for("mnist", "plain")["epochs"]
    assert recipe_help("epochs") == f"{recipe_for('mnist')['epochs']}; plain recipe: {plain_epochs}"
    assert recipe_help("batch_size") == "128"
    assert recipe_help("decay") == str(TrainConfig().decay)  # no recipe sets it


def test_the_recipe_module_docstring_quotes_no_value_of_the_tables():
    """The values live in the tables only (the docstring once said 60 epochs)."""
    import re

    import tasks.settings.recipes as recipes

    assert not re.search(r"\d+ epochs|decay \d|rate \d", recipes.__doc__ or "")


def test_unset_and_none_are_not_given():
    values = train_params("mnist", "tuned", {"augment": "recipe", "epochs": None, "lr": 0.5})
    assert values["augment"] == recipe_for("mnist")["augment"] and values["lr"] == 0.5


def test_train_options_given_win_over_the_recipe():
    values = train_params("fashion-mnist", "tuned", {"epochs": 5, "augment": "none"})
    fashion = recipe_for("fashion-mnist")
    assert (values["epochs"], values["augment"]) == (5, "none")
    assert values["weight_decay"] == fashion["weight_decay"] and values["nesterov"] is True
    assert values["warmup_epochs"] == 1  # at most a quarter of 5 epochs


def test_the_recipe_warmup_shrinks_with_the_epochs():
    for epochs, warmup in ((60, 2), (8, 2), (7, 1), (4, 1), (3, 0), (1, 0)):
        assert train_params("mnist", "tuned", {"epochs": epochs})["warmup_epochs"] == warmup


def test_another_schedule_or_no_momentum_drops_the_recipes_warmup_and_nesterov():
    step = train_params("mnist", "tuned", {"schedule": "step"})
    assert (step["warmup_epochs"], step["nesterov"]) == (0, False)
    kept = train_params("mnist", "tuned", {"schedule": "step", "warmup_epochs": 3})
    assert kept["warmup_epochs"] == 3
    assert train_params("mnist", "tuned", {"momentum": 0.0})["nesterov"] is False
    assert train_params("mnist", "tuned", {"optimizer": "adam"})["nesterov"] is False


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"epochs": 2, "warmup_epochs": 2}, "warmup_epochs=2"),
        ({"momentum": 0.0, "nesterov": True}, "nesterov=True"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"hidden": [0]}, "hidden=0"),
        ({"augment": "blur"}, "augment='blur'"),
    ],
)
def test_what_the_user_gave_is_refused_by_name(given, named):
    with pytest.raises(ConfigError, match=named):
        train_params("mnist", "tuned", given)


_VALUES = {
    "epochs": st.integers(1, 6),
    "batch_size": st.sampled_from([1, 16, 128, 70000]),
    "lr": st.sampled_from([1e-4, 0.05, 3.0, 0.0]),
    "optimizer": st.sampled_from(["sgd", "adam"]),
    "momentum": st.sampled_from([0.0, 0.5, 0.99]),
    "nesterov": st.booleans(),
    "weight_decay": st.sampled_from([0.0, 1e-3, 2.0]),
    "schedule": st.sampled_from(["constant", "step", "exponential", "cosine"]),
    "warmup_epochs": st.integers(0, 8),
    "patience": st.sampled_from([1, 5]),
    "hidden": st.sampled_from([[16], [64, 32], [0]]),
    "augment": st.sampled_from(["none", "shift", "affine", "elastic"]),
    "augment_strength": st.sampled_from([0.0, 1.5, 4.0]),
}


@settings(max_examples=300, deadline=None)
@given(
    dataset=st.sampled_from(list(DATASETS)),
    recipe=st.sampled_from(list(RECIPES)),
    given_values=st.fixed_dictionaries({}, optional=_VALUES),
)
def test_any_options_train_or_fail_naming_one_that_was_given(dataset, recipe, given_values):
    """A default is never the reason for an error: a refusal names an option the user gave."""
    try:
        values = train_params(dataset, recipe, given_values)
    except ConfigError as exc:
        named = [key for key in given_values if f"{key}=" in str(exc)]
        assert named, (str(exc), given_values)
        return
    TrainConfig.from_values(values)
    assert {key: values[key] for key in given_values} == given_values


def test_final_params_take_the_best_trial_with_the_final_epochs():
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
    params = final_params(best, "mnist", final_recipe="search", epochs=7, patience=3)
    assert (params["epochs"], params["patience"], params["lr"], params["batch_size"]) == (
        7,
        3,
        0.05,
        64,
    )
    assert params["hidden"] == [200] and params["augment"] == "shift"
    assert params["schedule"] == "step" and params["nesterov"] is False  # no momentum
    forced = final_params(best, "mnist", final_recipe="search", epochs=7, augment="none")
    assert forced["augment"] == "none"


def test_tuned_final_params_add_the_recipe_to_the_searched_ones():
    best = {"lr": 0.08, "batch_size": 64, "momentum": 0.7, "weight_decay": 1e-5, "hidden": 300}
    best |= {"optimizer": "sgd", "nesterov": False, "schedule": "step", "decay": 0.5}
    tuned = final_params(best, "fashion-mnist", epochs=40)
    searched = ("lr", "batch_size", "momentum", "weight_decay")
    assert {key: tuned[key] for key in searched} == {key: best[key] for key in searched}
    fashion = recipe_for("fashion-mnist")
    for key in ("schedule", "warmup_epochs", "nesterov", "augment"):
        assert tuned[key] == fashion[key], key
    assert tuned["patience"] is None and tuned["epochs"] == 40
    short = final_params(best, "idx", epochs=2)
    assert short["augment"] == "elastic" and short["warmup_epochs"] == 0
    off = final_params(best, "mnist", epochs=40, augment="none")
    assert off["augment"] == "none" and off["schedule"] == "cosine"
    chosen = final_params(
        {**best, "augment": "shift", "augment_strength": "0.5"}, "mnist", epochs=5
    )
    assert chosen["augment"] == "shift" and chosen["augment_strength"] == 0.5


def test_train_data_trains_on_every_image_unless_early_stopping_needs_a_split():
    from tasks.settings import train_data

    unset = {"val_size": None, "standardize": None}
    assert train_data("mnist", "tuned", unset, None) == {"val_size": 0, "standardize": True}
    assert train_data("mnist", "plain", unset, None) == {"val_size": 0, "standardize": False}
    assert train_data("mnist", "tuned", unset, 3)["val_size"] is None  # the automatic split
    given = {"val_size": 500, "standardize": False}
    assert train_data("fashion-mnist", "tuned", given, None) == given


@pytest.mark.parametrize(
    ("n_images", "expected"), [(60000, 10000), (8000, 1333), (1000, 166), (30, 10), (12, 2)]
)
def test_default_val_size(n_images: int, expected: int):
    assert default_val_size(n_images, 10) == expected
