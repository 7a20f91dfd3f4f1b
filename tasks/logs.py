"""The logger of the steps: Prefect's run logger, or a plain one outside a run.

A task's function also runs outside Prefect (``task.fn()`` in tests and benchmarks),
where :func:`prefect.get_run_logger` has no run to log to.
"""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.exceptions import MissingContextError


def run_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a Prefect run, else the standard logger called ``name``."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
