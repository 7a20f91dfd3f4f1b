"""Exceptions raised by the network and, through subclasses, by the whole project.

Every error a user can cause derives from :class:`MnistFlowError`, so the command
line can turn it into one readable line instead of a traceback.
"""

from __future__ import annotations


class MnistFlowError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(MnistFlowError, ValueError):
    """A setting is outside its allowed range; the message names the field."""


class ModelFileError(MnistFlowError):
    """A model file is missing, truncated, corrupted or does not match its metadata."""


class NonFiniteError(MnistFlowError, FloatingPointError):
    """The loss or the weights became NaN or infinite during training.

    Parameters
    ----------
    message:
        What became non-finite.
    epoch:
        The 1-based epoch in which it happened.
    """

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(f"{message} (epoch {epoch})")
        self.epoch = epoch


class InputError(MnistFlowError, ValueError):
    """An array argument has the wrong shape, dtype or values; the message names the parameter."""
