"""Training recipes: per-dataset defaults of ``mnist-flow train`` and the augmentation strength."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flows.cli import build_parser
from flows.commands import recipe_defaults
from flows.params import TrainParams
from flows.recipes import RECIPE_KEYS, recipe_for, recipe_help
from nn.errors import ConfigError
from tasks.trial_extras import augment_extras


def test_recipe_for_each_dataset_matches_the_measured_recipes():
    digits = recipe_for("mnist")
    assert digits == recipe_for("idx")
    assert (digits["epochs"], digits["lr"], digits["weight_decay"], digits["warmup_epochs"]) == (
        60,
        0.05,
        5e-4,
        2,
    )
    assert digits["augment"] == "elastic" and digits["nesterov"] and digits["standardize"]
    fashion = recipe_for("fashion-mnist")
    assert (fashion["epochs"], fashion["weight_decay"], fashion["warmup_epochs"]) == (80, 2e-4, 1)
    assert fashion["augment"] == "affine" and fashion["schedule"] == "cosine"
    plain = recipe_for("fashion-mnist", "plain")
    assert (plain["momentum"], plain["schedule"], plain["augment"], plain["standardize"]) == (
        0.0,
        "constant",
        "none",
        False,
    )
    for recipe in (digits, fashion, plain):
        assert tuple(recipe) == RECIPE_KEYS
        TrainParams(**{k: v for k, v in recipe.items() if k != "standardize"})


def test_recipe_for_returns_a_fresh_copy_and_rejects_unknown_names():
    recipe_for("mnist")["hidden"].append(5)
    assert recipe_for("mnist")["hidden"] == [300]
    with pytest.raises(ConfigError, match="recipe='fancy'"):
        recipe_for("mnist", "fancy")
    with pytest.raises(ConfigError, match="cifar"):
        recipe_for("cifar")


def test_recipe_help_names_each_datasets_default():
    assert recipe_help("epochs") == (
        "(default: 60 for mnist/idx, 80 for fashion-mnist; --recipe plain: 30)"
    )
    assert recipe_help("batch_size") == "(default: 128)"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["train"],
            {"epochs": 60, "augment": "elastic", "weight_decay": 5e-4, "standardize": True},
        ),
        (["train", "--dataset", "idx"], {"epochs": 60, "augment": "elastic", "warmup_epochs": 2}),
        (
            ["train", "--dataset", "fashion-mnist"],
            {"epochs": 80, "augment": "affine", "weight_decay": 2e-4, "warmup_epochs": 1},
        ),
        (
            ["train", "--recipe", "plain"],
            {"momentum": 0.0, "schedule": "constant", "augment": "none", "standardize": False},
        ),
        (  # given options win over the recipe
            ["train", "--dataset", "fashion-mnist", "--epochs", "5", "--augment", "none"],
            {"epochs": 5, "augment": "none", "weight_decay": 2e-4, "nesterov": True},
        ),
        (
            ["train", "--no-standardize", "--no-nesterov", "--hidden", "64"],
            {"standardize": False, "nesterov": False, "hidden": "64", "lr": 0.05},
        ),
    ],
)
def test_train_options_not_given_come_from_the_recipe(argv, expected):
    args = recipe_defaults(build_parser().parse_args(argv))
    assert {key: getattr(args, key) for key in expected} == expected
    assert args.patience is None and args.batch_size == 128


def test_train_help_shows_the_per_dataset_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # no line breaks inside "fashion-mnist"
    (train,) = [action.choices["train"] for action in build_parser()._subparsers._group_actions]
    text = " ".join(train.format_help().split())
    assert "(default: 60 for mnist/idx, 80 for fashion-mnist; --recipe plain: 30)" in text
    assert "(default: elastic for mnist/idx, affine for fashion-mnist; --recipe plain: none)" in (
        text
    )


def test_augment_strength_of_a_trial_scales_the_augmentation():
    data = SimpleNamespace(name="mnist")
    full = augment_extras({"augment": "affine"}, data)["augment"]
    half = augment_extras({"augment": "affine", "augment_strength": 0.5}, data)["augment"]
    assert half.config.max_rotation == pytest.approx(full.config.max_rotation / 2)
    text = augment_extras({"augment": "affine", "augment_strength": "2"}, data)["augment"]
    assert text.config.max_shift == pytest.approx(2 * full.config.max_shift)
    with pytest.raises(ConfigError, match="augment_strength"):
        augment_extras({"augment": "affine", "augment_strength": "strong"}, data)
    with pytest.raises(ConfigError, match="strength"):
        augment_extras({"augment": "affine", "augment_strength": 5}, data)
