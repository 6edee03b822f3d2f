"""Exceptions that carry a message meant for the user, not a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """An impossible or inconsistent configuration, detected before any training starts.

    The CLI prints only the message and exits non-zero, so the message must say what is
    wrong and what to do about it.
    """


class DataError(ConfigError):
    """A file the user pointed at (an image, a ``.npz``) is damaged; the message names it."""


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup with a name that was never registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, valid: Iterable[str], what: str = "valid") -> str:
    """``"; did you mean 'spectral'?"`` for a near miss, else ``"; valid: a, b, c"``.

    The tail of a one-line error: a typo gets the names it was probably meant to be, and a
    name nothing resembles gets the whole list, so the line always says what to type.
    """
    names = sorted({str(v) for v in valid})
    close = close_matches(name, names)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"; {what}: {', '.join(names)}" if names else ""


def close_matches(name: str, valid: Iterable[str]) -> list[str]:
    """Up to three of ``valid`` that ``name`` is probably a typo of, best first."""
    return difflib.get_close_matches(str(name), sorted({str(v) for v in valid}), n=3, cutoff=0.65)
