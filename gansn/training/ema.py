"""Exponential moving average of a generator, buffers included."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow``, a deep copy of ``model`` whose parameters track an EMA.

    Parameters are averaged with ``decay_t = min(decay, (1 + t) / (10 + t))`` (the warm-up of
    TensorFlow's ExponentialMovingAverage), so short runs are not dominated by the random
    initialisation.  Buffers -- BatchNorm running statistics, spectral-norm u/v vectors --
    are copied, not averaged: they must match the averaged weights' network, and an EMA of
    unit vectors is not a unit vector.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.start = float(decay), int(start)
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if step < self.start:
            self.copy_from(model)
            return
        t = self.num_updates
        decay = min(self.decay, (1.0 + t) / (10.0 + t))
        for ema_p, p in zip(self.shadow.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.shadow.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.num_updates += 1

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        self.shadow.load_state_dict(model.state_dict())

    def state_dict(self) -> dict:
        return {"model": self.shadow.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
