"""The network's exceptions: a bad setting, a bad array, a bad model file, a diverged run.

Each derives from :class:`NNError`, so a caller can tell an error it can act on from
a bug with one ``except``.
"""

from __future__ import annotations


class NNError(Exception):
    """Base class of every error ``nn`` raises on purpose."""


class ConfigError(NNError, ValueError):
    """A setting is outside its allowed range; the message names the field."""


class ModelFileError(NNError):
    """A model file is missing, truncated, corrupted or does not match its metadata."""


class NonFiniteError(NNError, FloatingPointError):
    """The loss or the weights became NaN or infinite in (1-based) ``epoch``; ``message``
    says what."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(f"{message} (epoch {epoch})")
        self.epoch = epoch


class InputError(NNError, ValueError):
    """An array argument has the wrong shape, dtype or values; the message names the parameter."""
