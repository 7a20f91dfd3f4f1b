"""The project's errors: the base :data:`MnistFlowError` and each area's own classes.

Messages name the file, parameter or value at fault and what is allowed; one that tells the
user which setting to change names it ``{data_dir:FOLDER}`` (:class:`Worded`).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

from nn.errors import ConfigError, NNError

MnistFlowError = NNError
"""Base of every error the project raises on purpose (the command line shows it as one line):
the network's own base, since ``nn`` imports nothing of the project."""

Spell = Callable[[str, Any], str]
"""How a place names a setting and its value: ``("data_dir", "FOLDER") -> "--data-dir FOLDER"``."""


def plain(name: str, value: Any) -> str:
    """The settings' own names: ``data_dir=FOLDER``."""
    return f"{name}={value}"


class _Spelled(string.Formatter):
    """Formats ``{name:VALUE}`` as ``spell(name, "VALUE")``."""

    def __init__(self, spell: Spell) -> None:
        self.spell = spell

    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        return key

    def format_field(self, value: Any, format_spec: str) -> str:
        return self.spell(value, format_spec)


class Worded(MnistFlowError):
    """An error whose ``template`` names settings ``{name:VALUE}``; ``str()`` is
    :func:`plain`, :meth:`worded` spells them as the place that shows it does (the command
    line ``--data-dir FOLDER``, a flow run ``data.data_dir=FOLDER``)."""

    def __init__(self, template: str, *args: Any) -> None:
        self.template = template
        super().__init__(self.worded(plain), *args)

    def worded(self, spell: Spell) -> str:
        return _Spelled(spell).format(self.template)

    def __reduce__(self) -> tuple[Any, ...]:  # a copy (a flow's state) keeps the template
        return type(self), (self.template,), self.__dict__


class SettingsHint(Worded, ConfigError):
    """Settings that do not fit together, named as :class:`Worded` does."""


# --- data: fetch, parse, preprocess ------------------------------------------------------


class DataError(MnistFlowError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class IDXFormatError(DataError):
    """A file is not a valid IDX file (bad magic, dimensions, length, compression, labels)."""


class ChecksumError(DataError):
    """A file's content does not match the checksum published for it."""


class FetchError(Worded, DataError):
    """No source could provide a dataset file; the message (a :class:`Worded` template) lists
    every attempt. ``transient``: at least one failure was a network error worth retrying."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class CacheError(DataError):
    """The cache directory cannot be created, read or written."""


class DataGateError(DataError):
    """The data check found the newly added data broken; the retraining stops (the reason)."""


# --- search: hyperparameter space and trials ----------------------------------------------


class SearchSpaceError(MnistFlowError, ValueError):
    """A search-space range or override is impossible; the message names the parameter."""


class SearchError(MnistFlowError):
    """A random search cannot run or produced no usable trial (backend, cluster, all failed)."""


# --- predict: images given by users ------------------------------------------------------


class ImageError(DataError):
    """An image file is missing, unreadable, not an image or has no pixels; names the file."""


class NoInkError(ImageError):
    """An image is empty or blank: no ink stands out from its background."""


# --- registry: champion/challenger model registry ----------------------------------------


class RegistryError(MnistFlowError):
    """The model registry is corrupted, locked, or asked for a model it does not hold."""


class DivergedError(MnistFlowError):
    """Training diverged (the loss exploded): the model is not registered."""


# --- outputs: run directory, plots, report --------------------------------------------------


class OutputError(MnistFlowError):
    """The run directory or one of its files cannot be written."""


class PlotError(MnistFlowError, ValueError):
    """The data given to a plot is empty or malformed; the message names the argument."""


# --- scoring: test-set metrics -------------------------------------------------------------


class EvaluationError(MnistFlowError, ValueError):
    """Predictions, labels or class names are inconsistent; the message names the argument."""


class DataDirError(Worded, DataError):
    """A data folder the user gave is missing or lacks a file; nothing else is tried."""


class NoRegistryError(Worded, RegistryError):
    """The registry folder the user gave does not exist (nothing is created)."""
