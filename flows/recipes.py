"""Training recipes: the default hyperparameters of ``mnist-flow train`` per dataset.

Two recipes, measured with ``bench/accuracy.py`` (784-300-10, He initialisation,
batch 128) and through the command line with ``bench/recipe_cli.py``:

- ``tuned`` (the default): Nesterov momentum 0.9, learning rate 0.05 with a linear
  warm-up then cosine decay, standardised pixels and augmentation of every training
  minibatch (:func:`tasks.augment.default_augment`). Digits (``mnist``, and ``idx``,
  which is usually digits): elastic distortions, weight decay 5e-4, 2 warm-up
  epochs, 60 epochs (mnist10k: 99.03 ± 0.10 % test accuracy over 3 seeds).
  ``fashion-mnist``: gentle affine transformations with horizontal flips, weight
  decay 2e-4, 1 warm-up epoch, 80 epochs (90.60 ± 0.14 %).
- ``plain``: minibatch SGD without momentum, constant learning rate 0.1, no weight
  decay, no augmentation, pixels in [0, 1], 30 epochs (the original project's training).

Early stopping (``patience``) is off in both: with augmentation and a cosine
schedule the validation loss can stall for a while and still improve later.
"""

from __future__ import annotations

from typing import Any, Literal

from nn.errors import ConfigError

Recipe = Literal["plain", "tuned"]
RECIPES: tuple[str, ...] = ("tuned", "plain")

_TUNED: dict[str, Any] = {
    "epochs": 60,
    "batch_size": 128,
    "lr": 0.05,
    "optimizer": "sgd",
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "warmup_epochs": 2,
    "patience": None,
    "hidden": [300],
    "augment": "elastic",
    "standardize": True,
}
_TUNED_FASHION = {
    **_TUNED,
    "epochs": 80,
    "weight_decay": 2e-4,
    "warmup_epochs": 1,
    "augment": "affine",
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
"""The settings a recipe fixes: ``TrainParams`` fields plus ``standardize`` (a data option)."""

FINAL_KEYS: tuple[str, ...] = ("schedule", "warmup_epochs", "nesterov", "augment")
"""What the pipeline's final model takes from the recipe on top of the best trial."""


def recipe_for(dataset: str, recipe: str = "tuned") -> dict[str, Any]:
    """The settings of ``recipe`` for ``dataset`` (a new dict: :data:`RECIPE_KEYS`).

    Parameters
    ----------
    dataset:
        ``mnist``, ``fashion-mnist`` or ``idx`` (treated as digits).
    recipe:
        ``tuned`` or ``plain``.

    Raises
    ------
    ConfigError
        For an unknown dataset or recipe.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"recipe={recipe!r} is not one of {', '.join(RECIPES)}")
    if dataset not in ("mnist", "idx", "fashion-mnist"):
        raise ConfigError(f"dataset={dataset!r} has no recipe; known: mnist, fashion-mnist, idx")
    if recipe == "plain":
        table = _PLAIN
    else:
        table = _TUNED_FASHION if dataset == "fashion-mnist" else _TUNED
    return {key: list(value) if isinstance(value, list) else value for key, value in table.items()}


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "off" if value is None else str(value)


def recipe_help(key: str) -> str:
    """``(default: ...)`` text of one setting: its tuned value per dataset, then the plain one.

    For example ``(default: 60 for mnist/idx, 80 for fashion-mnist; --recipe plain: 30)``.
    """
    digits = recipe_for("mnist")[key]
    fashion = recipe_for("fashion-mnist")[key]
    plain = recipe_for("mnist", "plain")[key]
    if fashion != digits:
        text = f"(default: {_show(digits)} for mnist/idx, {_show(fashion)} for fashion-mnist"
    else:
        text = f"(default: {_show(digits)}"
    if plain != digits:
        text += f"; --recipe plain: {_show(plain)}"
    return text + ")"
