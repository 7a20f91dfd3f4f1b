"""Every setting of the pipeline, declared once, and the training recipes.

:mod:`tasks.settings.declared` holds the declarations (name, type, range or choices,
default, help); :mod:`tasks.settings.recipes` the per-dataset training recipes and the
one function that merges a recipe, a search trial and the user's options. The flows'
parameter models, the command line and the search space are built from these.
No Prefect here.
"""

from tasks.settings.declared import (
    DATA,
    MODEL,
    PIPELINE,
    RECIPE,
    RUN,
    SEARCH,
    TRAINING,
    Setting,
    check_values,
    default_val_size,
)
from tasks.settings.recipes import (
    RECIPES,
    final_params,
    recipe_for,
    recipe_help,
    resolve,
    train_data,
    train_params,
)

__all__ = [
    "DATA",
    "MODEL",
    "PIPELINE",
    "RECIPE",
    "RECIPES",
    "RUN",
    "SEARCH",
    "TRAINING",
    "Setting",
    "check_values",
    "default_val_size",
    "final_params",
    "recipe_for",
    "recipe_help",
    "resolve",
    "train_data",
    "train_params",
]
