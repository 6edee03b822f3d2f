"""Moved to :mod:`gansn.study.verdicts`; this name stays so that existing imports keep working."""

from gansn.study.verdicts import *  # noqa: F403
