"""Exceptions that carry a message meant for the user, not a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """An impossible or inconsistent configuration, detected before any training starts.

    The CLI prints only the message and exits non-zero, so the message must say what is
    wrong and what to do about it.
    """


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup with a name that was never registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
