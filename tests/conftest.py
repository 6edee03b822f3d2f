"""Fixtures shared by the whole test suite (kept minimal; subfolders add their own)."""

from __future__ import annotations

import os

import pytest
import torch

# The tests use tiny tensors; on a small shared machine torch's intra-op thread pool only
# adds contention (measured: test_norms 8 s with the default threads, 1.4 s with one).
torch.set_num_threads(1)
# and so do the runs they train, in this process and in the CLIs they start: a run with
# threads=0 takes OMP_NUM_THREADS when it is set (gansn/threads.py), else all its cores
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def seeded() -> None:
    """Seed torch's global RNG so a test's random weights and inputs are reproducible."""
    torch.manual_seed(0)
