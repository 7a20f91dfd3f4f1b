"""The training recipes, and the one function that merges a recipe, a trial and the user's options.

Two recipes (their values are the tables below, nowhere else; ``bench/accuracy.py`` measures
them): ``tuned``, the default (Nesterov momentum, warm-up then cosine decay, weight decay,
standardised pixels, augmentation; :data:`_BY_FAMILY` adjusts it per dataset family), and
``plain``, the original project's minibatch SGD.

:func:`resolve` is where the values of a training run meet: later layers win, and a value
the user did not give is repaired to fit the others, so a default is never the reason for
an error; a value the user gave is checked as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from nn.config import RULES, Rule, SettingError, TrainConfig
from tasks.data.datasets import DATASETS, get_dataset
from tasks.fitting.augment import KINDS

__all__ = [
    "DEFAULTS",
    "HYPER",
    "MODEL_RULES",
    "RECIPES",
    "RECIPE_KEYS",
    "TUNED_FROM_SEARCH",
    "UNSET",
    "VAL_SHARE",
    "VAL_SIZE_MAX",
    "default_val_size",
    "final_params",
    "recipe_for",
    "recipe_help",
    "resolve",
    "scaled_warmup",
    "train_data",
    "train_params",
]

RECIPES = ("tuned", "plain")

UNSET = "recipe"
"""The value of a training option that takes the recipe's (the forms' select shows it)."""

MODEL_RULES: dict[str, Rule] = {
    "hidden": Rule("hidden", list, 1, 8192),
    "augment": Rule("augment", str, choices=KINDS),
    "augment_strength": Rule("augment_strength", float, 0.0, 3.0),
}
"""What a training run needs besides :class:`nn.config.TrainConfig`: the network and its
augmentation."""

HYPER: tuple[str, ...] = (*RULES, *MODEL_RULES)
"""Every hyperparameter of one training run (what the flows' ``TrainParams`` hold)."""

DEFAULTS: dict[str, Any] = {
    **TrainConfig().to_dict(),
    "hidden": [300],
    "augment": "none",
    "augment_strength": 1.0,
}
"""The value of each hyperparameter that neither the recipe nor the user sets."""

_TUNED: dict[str, Any] = {
    "epochs": 60,
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
_BY_FAMILY: dict[str, dict[str, Any]] = {
    "clothes": {"weight_decay": 2e-4, "warmup_epochs": 1, "augment": "affine"},
}
"""What the tuned recipe changes for a family of datasets (``DatasetSpec.family``)."""
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

VAL_SHARE = 6
"""The automatic validation split is one training image in ``VAL_SHARE``..."""
VAL_SIZE_MAX = 10_000
"""... and at most this many (MNIST's 60,000 training images: 50,000 + 10,000)."""


def default_val_size(n_images: int, n_classes: int) -> int:
    """The validation split of ``n_images`` training images when none is given.

    A sixth of them, at most :data:`VAL_SIZE_MAX`, and at least one per class (a
    stratified split needs it) while that leaves as many images to train on.
    """
    size = min(VAL_SIZE_MAX, n_images // VAL_SHARE)
    if size < n_classes <= n_images - n_classes:
        size = n_classes
    return size


def recipe_for(dataset: str, recipe: str = "tuned") -> dict[str, Any]:
    """The settings of ``recipe`` for ``dataset`` (a new dict with :data:`RECIPE_KEYS`).

    Raises
    ------
    ConfigError
        For an unknown dataset or recipe.
    """
    if recipe not in RECIPES:
        raise SettingError("recipe", recipe, f"must be one of {', '.join(RECIPES)}")
    spec = get_dataset(dataset)
    table = {**_TUNED, **_BY_FAMILY.get(spec.family, {})} if recipe == "tuned" else _PLAIN
    return {key: list(value) if isinstance(value, list) else value for key, value in table.items()}


def resolve(values: Mapping[str, Any], explicit: Collection[str] = ()) -> dict[str, Any]:
    """Complete, repair and check the hyperparameters of one training run.

    ``values``: hyperparameters (others ignored; missing ones take :data:`DEFAULTS`);
    ``explicit``: the names the user gave, never repaired. Returns every key of
    :data:`HYPER`, with Nesterov momentum off without momentum or with Adam and the
    warm-up at most a quarter of the epochs unless given. Raises :class:`SettingError`
    naming a value out of range or settings that contradict each other.
    """
    merged = {**DEFAULTS, **{key: value for key, value in values.items() if key in HYPER}}
    if isinstance(merged["hidden"], int):
        merged["hidden"] = [merged["hidden"]]
    for name, rule in (*RULES.items(), *MODEL_RULES.items()):
        if name in explicit:  # what the user gave is refused before anything is repaired
            rule.check(merged[name])
    if "nesterov" not in explicit and (merged["momentum"] == 0 or merged["optimizer"] != "sgd"):
        merged["nesterov"] = False
    if "warmup_epochs" not in explicit and isinstance(merged["epochs"], int):
        merged["warmup_epochs"] = min(merged["warmup_epochs"], merged["epochs"] // 4)
    for rule in MODEL_RULES.values():
        rule.check(merged[rule.name])
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

    ``given`` maps names to values, ``None`` or :data:`UNSET` for those not given. The
    recipe's warm-up and Nesterov momentum belong to its schedule: with another schedule
    given they fall back to :data:`DEFAULTS` (none), unless given too.
    """
    chosen = {k: v for k, v in given.items() if k in HYPER and v is not None and v != UNSET}
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
    dataset's tuned recipe; ``"search"``: the best trial as it is (no augmentation unless
    searched). ``epochs`` and ``patience`` are the run's; the augmentation is ``augment``
    if given, else the search's, else the recipe's.
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
    if isinstance(values.get("augment_strength"), str):  # a search space's text ("0.5")
        try:
            values["augment_strength"] = float(values["augment_strength"])
        except ValueError:
            pass
    explicit = ["epochs", "patience"]
    if augment not in (None, UNSET):
        values["augment"] = augment
        explicit.append("augment")
    return resolve(values, explicit=explicit)


def scaled_warmup(recipe: Mapping[str, Any], epochs: int) -> int:
    """The recipe's warm-up for a run of ``epochs``: the same share of the epochs, at least
    one when the recipe has one (trials and the final model scale it alike)."""
    warmup = int(recipe.get("warmup_epochs", 0))
    return max(1, round(warmup * epochs / int(recipe["epochs"]))) if warmup else 0


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "off" if value is None else str(value)


def recipe_help(key: str) -> str:
    """What an unset training option takes, e.g. ``"1e-4 for mnist/idx, 2e-4 for
    fashion-mnist; plain recipe: 0.0"``; a setting no recipe fixes gives its :data:`DEFAULTS`
    value."""
    if key not in RECIPE_KEYS:
        return _show(DEFAULTS[key])
    by_value: dict[str, list[str]] = {}
    for name in DATASETS:
        by_value.setdefault(_show(recipe_for(name)[key]), []).append(name)
    text = ", ".join(f"{value} for {'/'.join(names)}" for value, names in by_value.items())
    if len(by_value) == 1:
        text = next(iter(by_value))
    plain = _show(_PLAIN[key])
    return text if plain == _show(_TUNED[key]) else f"{text}; plain recipe: {plain}"
