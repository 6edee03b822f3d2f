"""2-D Gaussian mixtures used to count dropped modes (PacGAN, Lin et al. 2018).

``ring8``: 8 modes evenly spaced on the unit circle, sigma 0.01.
``grid25``: 25 modes on {-4, -2, 0, 2, 4}^2, sigma 0.05.

Samples are drawn once at construction from a private ``torch.Generator`` (never the global
RNG), so the data are a pure function of the options: a training set of fixed size ``n``,
as PacGAN's (100,000 points, reshuffled every epoch).  With ``balanced=True`` every mode gets
exactly ``n // K`` or ``n // K + 1`` points; with ``balanced=False`` each point's mode is
drawn uniformly at random, as PacGAN's data code does.  The held-out set (``train=False``)
uses ``seed + 1``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from gansn.data.base import DATASETS
from gansn.errors import ConfigError


class GaussianMixture2D(Dataset):
    """``n`` points ``(2,)`` float32 around ``centers (K, 2)`` with isotropic ``std``.

    Labels are the index of the mode each point was drawn from.
    """

    stacked = False

    def __init__(
        self,
        name: str,
        centers: np.ndarray,
        std: float,
        n: int,
        seed: int,
        train: bool,
        balanced: bool = True,
    ) -> None:
        if n < 1:
            raise ConfigError(f"dataset {name}: n must be positive, got {n}")
        if std < 0:
            raise ConfigError(f"dataset {name}: std must be >= 0, got {std}")
        self.name = name
        self.centers = np.asarray(centers, dtype=np.float64)
        self.std = float(std)
        self.shape: tuple[int, ...] = (2,)
        self.num_classes: int | None = len(self.centers)
        g = torch.Generator().manual_seed(int(seed) + (0 if train else 1))
        k = len(self.centers)
        if balanced:
            # balanced then shuffled: mode frequencies are exact, not just equal in expectation
            self.labels = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
        else:
            self.labels = torch.randint(k, (n,), generator=g)
        noise = torch.randn(n, 2, generator=g, dtype=torch.float64) * self.std
        c = torch.as_tensor(self.centers)
        self.data = (c[self.labels] + noise).to(torch.float32)

    def __len__(self) -> int:
        return self.data.shape[0]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B,)`` int64 indices -> ``x (B, 2)`` float32, ``y (B,)`` int64 mode indices."""
        return self.data[indices], self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[index], self.labels[index]

    def __repr__(self) -> str:
        return f"GaussianMixture2D(name={self.name!r}, n={len(self)}, K={self.num_classes})"


def ring_centers(modes: int, radius: float) -> np.ndarray:
    """``(modes, 2)`` points evenly spaced on a circle, the first at angle 0."""
    angles = 2 * math.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_centers(side: int, spacing: float) -> np.ndarray:
    """``(side**2, 2)`` points of a centered square grid, row-major in (x, y)."""
    axis = (np.arange(side) - (side - 1) / 2) * spacing
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


@DATASETS.register("ring8")
def ring8(
    *,
    train: bool = True,
    n: int = 100_000,
    modes: int = 8,
    radius: float = 1.0,
    std: float = 0.01,
    seed: int = 0,
    balanced: bool = True,
) -> GaussianMixture2D:
    """PacGAN's ring: ``modes`` Gaussians on a circle of ``radius``."""
    if modes < 1:
        raise ConfigError(f"dataset ring8: modes must be positive, got {modes}")
    return GaussianMixture2D("ring8", ring_centers(modes, radius), std, n, seed, train, balanced)


@DATASETS.register("grid25")
def grid25(
    *,
    train: bool = True,
    n: int = 100_000,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    seed: int = 0,
    balanced: bool = True,
) -> GaussianMixture2D:
    """PacGAN's grid: ``side x side`` Gaussians ``spacing`` apart, centered on the origin."""
    if side < 1:
        raise ConfigError(f"dataset grid25: side must be positive, got {side}")
    return GaussianMixture2D("grid25", grid_centers(side, spacing), std, n, seed, train, balanced)
