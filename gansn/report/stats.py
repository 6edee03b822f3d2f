"""Moved to :mod:`gansn.study.stats`; this name stays so that existing imports keep working."""

from gansn.study.stats import *  # noqa: F403
