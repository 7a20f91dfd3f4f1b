"""The training recipes and the one function that merges a recipe, a trial and the user's options.

The settings themselves (type, range or choices, default, help) are declared once: the
training ones' rules in :mod:`nn.config`, everything else with the flows' parameter models
(:mod:`flows.params`), from which the command line is built. No Prefect here.
"""

from tasks.settings.recipes import *  # noqa: F403
from tasks.settings.recipes import __all__  # noqa: F401
