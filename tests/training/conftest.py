"""Fixtures for training tests: composed configs of tiny runs on synthetic data."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from gansn.config import compose, to_plain

# Plain SGD for tests that compare two ways of computing one update (ranks vs one process,
# channels-last vs contiguous, compiled vs eager): its update is linear in the gradient, so
# sums taken in another order stay within float rounding.  Adam is not a fair referee there:
# a gradient element within rounding of zero takes a step of +-lr either way.
SGD = [
    "optim.g._target_=torch.optim.SGD",
    "optim.d._target_=torch.optim.SGD",
    "~optim.g.betas",
    "~optim.d.betas",
    "optim.g.lr=0.05",
    "optim.d.lr=0.05",
]

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


@pytest.fixture
def sgd() -> list[str]:
    """The overrides that train G and D with plain SGD (see ``SGD``)."""
    return list(SGD)


@pytest.fixture
def free_port():
    """``free_port() -> int``: a TCP port on 127.0.0.1 that nothing listens on now."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick
