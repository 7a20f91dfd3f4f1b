"""The search anchored on the recipe: centred space, shared settings, the recipe as trial 0,
and which trial the search keeps (the recipe unless beaten by more than the noise)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tasks.settings import final_params, recipe_for, scaled_warmup, train_params
from tasks.tuning.anchor import recipe_point, recipe_space, trial_base
from tasks.tuning.choice import choose, final_start, score_on_test
from tasks.tuning.overrides import build_space
from tasks.tuning.space import Choice, Range


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_the_default_space_is_centred_on_the_recipe(dataset):
    recipe = recipe_for(dataset)
    specs = recipe_space(recipe)
    lr, wd = specs["lr"], specs["weight_decay"]
    assert isinstance(lr, Range) and lr.log and isinstance(wd, Range) and wd.log
    # log-uniform and symmetric around the recipe's value: its geometric centre
    assert math.sqrt(lr.low * lr.high) == pytest.approx(recipe["lr"])
    assert math.sqrt(wd.low * wd.high) == pytest.approx(recipe["weight_decay"])
    assert specs["batch_size"] == Choice((64, 128, 256)) and recipe["batch_size"] == 128
    assert 1.0 in specs["augment_strength"].values
    point, why = recipe_point(build_space({}, specs), recipe)
    assert why is None
    assert point == {
        "lr": recipe["lr"],
        "weight_decay": recipe["weight_decay"],
        "batch_size": 128,
        "hidden": 300,
        "augment_strength": 1.0,
    }
    # many draws of the space spread on both sides of the recipe's learning rate
    space = build_space({}, specs)
    draws = [space.sample(0, i)["lr"] for i in range(1, 41)]
    assert min(draws) < recipe["lr"] < max(draws)
    assert all(lr.low <= d <= lr.high for d in draws)


def test_an_explicit_space_that_excludes_the_recipe_says_which_parameter():
    recipe = recipe_for("mnist")
    space = build_space({"lr": "1e-3:1e-2:log"}, recipe_space(recipe))
    point, why = recipe_point(space, recipe)
    assert point is None and why == "lr=0.05 is outside 0.001:0.01:log"
    space = build_space({"batch_size": "32,64"}, recipe_space(recipe))
    assert recipe_point(space, recipe) == (None, "batch_size=128 is outside 32,64")
    # a space that still holds the recipe keeps it, in the space's own types
    space = build_space({"augment_strength": "0.5,1"}, recipe_space(recipe))
    point, why = recipe_point(space, recipe)
    assert why is None and point["augment_strength"] == "1"


def test_trials_share_the_recipe_with_its_warmup_scaled_to_their_epochs():
    recipe = recipe_for("mnist")  # 2 warm-up epochs
    base = trial_base(recipe, 27)
    assert base == {
        "optimizer": "sgd",
        "momentum": 0.9,
        "nesterov": True,
        "schedule": "cosine",
        "augment": "elastic",
        "warmup_epochs": 1,
        "hidden": 300,
    }
    epochs = recipe["epochs"]
    assert scaled_warmup(recipe, epochs) == 2 and scaled_warmup(recipe, epochs // 2) == 1
    assert scaled_warmup(recipe, 3) == 1 and scaled_warmup(recipe_for("mnist", "plain"), 9) == 0


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_when_the_recipe_is_kept_the_final_model_is_mnist_flow_train(dataset):
    recipe = recipe_for(dataset)
    point, _ = recipe_point(build_space({}, recipe_space(recipe)), recipe)
    final = final_params(point, dataset, epochs=recipe["epochs"])
    assert final == train_params(dataset, "tuned", {})


def _result(trial: int, accuracy: float) -> SimpleNamespace:
    return SimpleNamespace(trial=trial, params={"lr": 0.1 * (trial + 1)},
                           best_val_accuracy=accuracy, epochs=27)  # fmt: skip


def test_a_trial_replaces_the_recipe_only_beyond_one_standard_error():
    recipe, close, far = _result(0, 0.9900), _result(3, 0.9908), _result(5, 0.9915)
    margin = math.sqrt(0.99 * 0.01 / 10_000)  # 0.1 points on 10,000 images
    kept, choice = choose([recipe, close], close, True, 10_000)
    assert kept is recipe and choice["chosen"] == "recipe"
    assert choice["margin"] == pytest.approx(margin)
    assert "not more than one standard error" in choice["reason"]
    assert choice["reference"]["trial"] == 0 and choice["top"]["trial"] == 3
    kept, choice = choose([recipe, close, far], far, True, 10_000)
    assert (
        kept is far
        and choice["chosen"] == "tuned"
        and "beat the recipe by 0.15" in choice["reason"]
    )
    kept, choice = choose([recipe], recipe, True, 10_000)
    assert kept is recipe and choice["reason"] == "the recipe is the best trial"
    kept, choice = choose([close], close, False, 10_000)  # an explicit space without it
    assert kept is close and choice["reference"] is None and "not a trial" in choice["reason"]


def test_trials_reused_from_the_store_have_no_checkpoint_and_read_no_test_data(tmp_path):
    """A cached re-run: no checkpoint to score, so the test split is not even read."""

    class Unread:
        def load_test(self):
            raise AssertionError("the test split was read for nothing")

    checkpoints = SimpleNamespace(path=lambda spec, epoch: tmp_path / f"t{spec.index}-e{epoch}")
    last = {3: SimpleNamespace(index=3, epochs=2)}
    choice = {"top": {"trial": 3, "val_accuracy": 0.9}, "reference": None}
    assert score_on_test(checkpoints, last, choice, Unread()) == {}


def test_the_final_model_continues_a_trial_only_with_its_settings_and_images():
    trial = {"epochs": 27, "lr": 0.05, "warmup_epochs": 1, "patience": None}
    start, why = final_start(dict(trial), trial, False, "c.npz")
    assert start is None and "every training image" in why
    start, why = final_start({**trial, "epochs": 100}, trial, True, "c.npz")
    assert start is None and "epochs 27 -> 100" in why
    start, why = final_start(dict(trial), trial, True, None)
    assert start is None and "not kept" in why
    start, why = final_start(dict(trial), trial, True, "c.npz")
    assert start == "c.npz" and why.startswith("continued from the chosen trial's checkpoint")
