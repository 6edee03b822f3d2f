"""Small synthetic datasets shaped like gansn.data's, so metric tests need no files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset


class PatternImages(Dataset):
    """Class k = a fixed random pattern + noise; items (x (C, S, S) in [-1, 1], y)."""

    def __init__(
        self,
        n: int = 400,
        num_classes: int = 4,
        channels: int = 1,
        size: int = 16,
        seed: int = 0,
        labelled: bool = True,
        name: str = "patterns",
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        patterns = (
            torch.rand(
                num_classes, channels, size, size, generator=torch.Generator().manual_seed(123)
            )
            * 2
            - 1
        )
        self.labels = torch.randint(num_classes, (n,), generator=g)
        noise = torch.randn(n, channels, size, size, generator=g) * 0.2
        self.x = (patterns[self.labels] + noise).clamp(-1, 1)
        self.name = name
        self.shape = (channels, size, size)
        self.num_classes = num_classes if labelled else None

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.labels[i]


class StackedPatterns(Dataset):
    """Three PatternImages samples as channels; label 100·a + 10·b + c (like gansn.data).

    ``expose_base=False`` hides the base set and sets ``stacked = True`` instead, the other
    way a dataset can declare itself stacked.
    """

    def __init__(
        self, base: PatternImages, n: int = 300, seed: int = 0, expose_base: bool = True
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self._images = base.x
        self.triplets = torch.randint(len(base), (n, 3), generator=g)
        self.digits = base.labels[self.triplets]
        self.labels = self.digits @ torch.tensor([100, 10, 1])
        self.num_classes = base.num_classes**3
        self.shape = (3, *base.shape[1:])
        self.name = base.name
        if expose_base:
            self.base = base
        else:
            self.stacked = True

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._images[self.triplets[i]].flatten(0, 1), self.labels[i]


class Ring(Dataset):
    """ring8-like points with .centers and .std."""

    def __init__(self, n: int = 1000, std: float = 0.01, seed: int = 0) -> None:
        self.centers = np.stack(
            [np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1
        )
        self.std = std
        self.name = "ring_test"
        self.shape = (2,)
        self.num_classes = 8
        rng = np.random.default_rng(seed)
        self.modes = rng.integers(8, size=n)
        self.x = torch.tensor(
            self.centers[self.modes] + std * rng.standard_normal((n, 2)), dtype=torch.float32
        )

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.modes[i])


@pytest.fixture
def patterns() -> PatternImages:
    return PatternImages()


@pytest.fixture
def make_patterns() -> type[PatternImages]:
    return PatternImages


@pytest.fixture
def make_stacked() -> type[StackedPatterns]:
    return StackedPatterns


@pytest.fixture
def ring() -> Ring:
    return Ring()
