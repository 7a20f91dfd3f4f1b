"""Every setting of the pipeline, declared once, and the training recipes.

:mod:`tasks.settings.declared` holds the declarations (name, type, range or choices,
default, help); :mod:`tasks.settings.recipes` the per-dataset training recipes and the
one function that merges a recipe, a search trial and the user's options. The flows'
parameter models, the command line and the search space are built from these.
No Prefect here.
"""

from tasks.settings import declared, recipes
from tasks.settings.declared import *  # noqa: F403 - the package re-exports both modules
from tasks.settings.recipes import *  # noqa: F403

__all__ = [*declared.__all__, *recipes.__all__]
