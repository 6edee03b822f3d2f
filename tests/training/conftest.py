"""Fixtures for training tests: composed configs of tiny runs on synthetic data."""

from __future__ import annotations

from typing import Any

import pytest

from gansn.config import compose, to_plain

TINY = [
    "experiment=quick",
    "steps=4",
    "batch_size=4",
    "grid.n=4",
    "grid.nrow=2",
    "log_every=1",
    "sample_every=2",
    "ckpt_every=2",
    "dataset.n=32",
]


@pytest.fixture
def tiny_cfg():
    """``tiny_cfg(*overrides) -> (plain config dict, overrides list)`` for a quick run."""

    def make(*overrides: str) -> tuple[dict[str, Any], list[str]]:
        ov = TINY + list(overrides)
        return to_plain(compose(ov)), ov

    return make
