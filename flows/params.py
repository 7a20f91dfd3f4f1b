"""The flows' parameter models (declared in :mod:`tasks.settings.params`, where the search
task takes its defaults from them too)."""

from tasks.settings.params import *  # noqa: F403
from tasks.settings.params import __all__  # noqa: F401
