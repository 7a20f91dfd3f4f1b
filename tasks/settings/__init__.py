"""The training recipes and the one function that merges a recipe, a trial and the user's
options (:mod:`tasks.settings.recipes`); the settings' models are :mod:`tasks.settings.params`."""

from tasks.settings.recipes import *  # noqa: F403
from tasks.settings.recipes import __all__  # noqa: F401
