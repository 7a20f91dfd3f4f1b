"""Training recipes, and the one function that merges a recipe, a trial and the user's options.

Two recipes, measured with ``bench/accuracy.py`` and ``bench/recipe_cli.py`` (784-300-10,
He initialisation):

- ``tuned`` (the default of ``mnist-flow train`` and of the pipeline's final model):
  Nesterov momentum 0.9, learning rate 0.05 with a linear warm-up then cosine decay,
  weight decay, standardised pixels and augmentation of every training minibatch
  (:func:`tasks.fitting.augment.default_augment`). Digits: elastic distortions, weight decay
  5e-4, 2 warm-up epochs, 60 epochs. Each dataset's ``recipe`` entry
  (:data:`tasks.data.datasets.DATASETS`) says what differs for it (Fashion-MNIST: 80 epochs,
  weight decay 2e-4, 1 warm-up epoch, gentle affine maps with flips).
- ``plain``: minibatch SGD without momentum, constant learning rate 0.1, no weight
  decay, no augmentation, pixels in [0, 1], 30 epochs: the original project's training.

:func:`resolve` is where the values of a training run meet: later layers win, and a
value the user did not give is repaired to fit the others (Nesterov momentum only
with momentum and SGD; the warm-up at most a quarter of the epochs), so a default is
never the reason for an error. A value the user gave is checked as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from nn.config import TRAINING, TrainConfig
from tasks.data.datasets import DATASETS, get_dataset
from tasks.settings.declared import MODEL, RECIPE, check_values

__all__ = [
    "HYPER",
    "RECIPES",
    "RECIPE_KEYS",
    "TUNED_FROM_SEARCH",
    "final_params",
    "recipe_for",
    "recipe_help",
    "resolve",
    "scaled_warmup",
    "train_data",
    "train_params",
]

RECIPES: tuple[str, ...] = RECIPE.choices

HYPER = {**TRAINING, **MODEL}
"""Every hyperparameter of one training run (what the flows' ``TrainParams`` hold)."""

_TUNED: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 128,
    "lr": 0.05,
    "optimizer": "sgd",
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "warmup_epochs": 2,
    "hidden": [300],
    "augment": "elastic",
    "standardize": True,
    "val_size": 0,
}
_PLAIN: dict[str, Any] = {
    **_TUNED,
    "epochs": 30,
    "lr": 0.1,
    "momentum": 0.0,
    "nesterov": False,
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup_epochs": 0,
    "augment": "none",
    "standardize": False,
}

RECIPE_KEYS: tuple[str, ...] = tuple(_TUNED)
"""The settings a recipe fixes: hyperparameters plus two data settings, ``standardize`` and
``val_size`` (0: train on every training image, see :func:`train_data`)."""

TUNED_FROM_SEARCH = ("lr", "batch_size", "optimizer", "momentum", "weight_decay", "hidden")
"""What the pipeline's final model takes from the best trial under ``final_recipe="tuned"``."""


def recipe_for(dataset: str, recipe: str = "tuned") -> dict[str, Any]:
    """The settings of ``recipe`` for ``dataset`` (a new dict with :data:`RECIPE_KEYS`).

    Raises
    ------
    ConfigError
        For an unknown dataset or recipe.
    """
    RECIPE.check(recipe)
    spec = get_dataset(dataset)
    table = {**_TUNED, **spec.recipe} if recipe == "tuned" else _PLAIN
    return {key: list(value) if isinstance(value, list) else value for key, value in table.items()}


def defaults() -> dict[str, Any]:
    """The declared default of every hyperparameter (:data:`HYPER`), as a new dict."""
    return {name: setting.default for name, setting in HYPER.items()}


def resolve(values: Mapping[str, Any], explicit: Collection[str] = ()) -> dict[str, Any]:
    """Complete, repair and check the hyperparameters of one training run.

    Parameters
    ----------
    values:
        Hyperparameters (others are ignored); missing ones take their declared default.
    explicit:
        The names the user gave: never repaired, so an impossible combination fails
        naming them.

    Returns
    -------
    dict
        Every key of :data:`HYPER`. Where the user did not say otherwise, Nesterov
        momentum is off without momentum or with Adam, and the warm-up is at most a
        quarter of the epochs.

    Raises
    ------
    ConfigError
        A value out of range, or settings that contradict each other; the message
        names the setting (``"warmup_epochs=5 must be ..."``).
    """
    merged = defaults()
    merged.update({key: value for key, value in values.items() if key in HYPER})
    check_values(HYPER, {key: merged[key] for key in explicit if key in merged})
    if "nesterov" not in explicit and (merged["momentum"] == 0 or merged["optimizer"] != "sgd"):
        merged["nesterov"] = False
    if "warmup_epochs" not in explicit and isinstance(merged["epochs"], int):
        merged["warmup_epochs"] = min(merged["warmup_epochs"], merged["epochs"] // 4)
    if isinstance(merged["hidden"], int):
        merged["hidden"] = [merged["hidden"]]
    check_values(MODEL, merged)
    TrainConfig.from_values(merged)
    return merged


def train_data(
    dataset: str, recipe: str, data: Mapping[str, Any], patience: int | None
) -> dict[str, Any]:
    """The data settings of ``mnist-flow train``: ``data`` with the recipe's where unset.

    ``standardize`` and ``val_size`` left as None take the recipe's: the recipes train
    on every training image (``val_size=0``), except with early stopping (``patience``),
    which needs a validation split and so keeps the automatic one (None).
    """
    chosen = recipe_for(dataset, recipe)
    values = dict(data)
    if values.get("standardize") is None:
        values["standardize"] = chosen["standardize"]
    if values.get("val_size") is None and patience is None:
        values["val_size"] = chosen["val_size"]
    return values


def train_params(dataset: str, recipe: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of ``mnist-flow train``: the recipe, then what the user gave.

    ``given`` maps names to values, ``None`` for those not given. The recipe's warm-up
    and Nesterov momentum belong to its schedule: with another schedule given they
    fall back to their declared defaults (none), unless given too.
    """
    chosen = {key: value for key, value in given.items() if value is not None and key in HYPER}
    base = {key: value for key, value in recipe_for(dataset, recipe).items() if key in HYPER}
    if chosen.get("schedule", base["schedule"]) != base["schedule"]:
        base.pop("warmup_epochs")
        base.pop("nesterov")
    return resolve({**base, **chosen}, explicit=chosen)


def final_params(
    best: Mapping[str, Any],
    dataset: str,
    *,
    final_recipe: str = "tuned",
    epochs: int,
    patience: int | None = None,
    augment: str | None = None,
) -> dict[str, Any]:
    """The pipeline's final model from the best trial, the recipe and the run's options.

    ``final_recipe="tuned"``: the best trial's :data:`TUNED_FROM_SEARCH` on top of the
    dataset's tuned recipe (its schedule, warm-up, Nesterov momentum and augmentation).
    ``"search"``: the best trial's hyperparameters as they are, without augmentation
    unless the search chose one. Either way ``epochs`` and ``patience`` are the run's;
    the augmentation is ``augment`` if given, else the search's (when it tuned
    ``augment``), else the recipe's; ``augment_strength`` is the search's or 1.
    """
    if final_recipe == "tuned":
        recipe = recipe_for(dataset)
        base = {key: value for key, value in recipe.items() if key in HYPER}
        base["warmup_epochs"] = scaled_warmup(recipe, epochs)
        from_trial = {key: best[key] for key in TUNED_FROM_SEARCH if key in best}
    else:
        base = {"augment": "none"}
        from_trial = {key: value for key, value in best.items() if key in HYPER}
    values = {**base, **from_trial, "epochs": epochs, "patience": patience}
    for key in ("augment", "augment_strength"):
        if key in best:
            values[key] = best[key]
    if "augment_strength" in values:
        values["augment_strength"] = _number(values["augment_strength"])
    explicit = ["epochs", "patience"]
    if augment is not None:
        values["augment"] = augment
        explicit.append("augment")
    return resolve(values, explicit=explicit)


def scaled_warmup(recipe: Mapping[str, Any], epochs: int) -> int:
    """The recipe's warm-up for a run of ``epochs``: the same share of the epochs.

    ``w`` warm-up epochs of the recipe's ``E`` become ``round(w * epochs / E)``, at least
    one when ``w > 0`` (:func:`resolve` then keeps it under a quarter of the epochs). The
    search's trials and the final model scale it alike, so a final model of a trial's
    length has that trial's schedule.
    """
    warmup = int(recipe.get("warmup_epochs", 0))
    return max(1, round(warmup * epochs / int(recipe["epochs"]))) if warmup else 0


def _number(value: Any) -> Any:
    """A number given as text by a search space (``"0.5"``), else ``value`` unchanged."""
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "off" if value is None else str(value)


def recipe_help(key: str) -> str:
    """``(default: ...)`` text of one setting: its tuned value per dataset, then the plain one.

    For example ``(default: 60 for mnist/idx, 80 for fashion-mnist; --recipe plain: 30)``.
    """
    by_value: dict[str, list[str]] = {}
    for name in DATASETS:
        by_value.setdefault(_show(recipe_for(name)[key]), []).append(name)
    if len(by_value) == 1:
        text = f"(default: {next(iter(by_value))}"
    else:
        parts = [f"{value} for {'/'.join(names)}" for value, names in by_value.items()]
        text = "(default: " + ", ".join(parts)
    plain = _show(recipe_for("mnist", "plain")[key])
    if plain != _show(recipe_for("mnist")[key]):
        text += f"; --recipe plain: {plain}"
    return text + ")"
