"""Where samples come from: datasets, generators, image folders, ``.npz`` files, arrays.

Every source yields batches of float tensors in [-1, 1]: images (B, C, H, W) or points
(B, D).  :func:`as_source` turns what a caller has into a :class:`Source`:

* a ``torch.utils.data.Dataset`` of ``(x, y)`` items  -> :class:`DatasetSource`
* an ``nn.Module`` with a ``z_dim`` attribute (a gansn generator) -> :class:`GeneratorSource`
* any other callable ``sample(n) -> (n, ...) tensor``    -> :class:`GeneratorSource`
* a directory of images (png, jpg, jpeg, bmp, webp)      -> :class:`FolderSource`
* a ``.npz`` file                                 -> :class:`NpzSource` or :class:`StatsSource`
* a numpy array or tensor                                -> :class:`ArraySource`

``.npz`` sample files hold one array under the key ``x`` (or ``samples``, or numpy's default
``arr_0``): either uint8 images (N, H, W, C) or (N, H, W) in [0, 255] (the format
``gansn-sample`` writes and stylegan2-ada / clean-fid use), or float32 (N, C, H, W) images or
(N, D) points in [-1, 1].  A ``.npz`` holding ``mu`` and ``sigma`` instead is a pytorch-fid
statistics file, usable as the reference for FID only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from gansn.errors import ConfigError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class Source:
    """Base class.  ``length`` is None for an endless source (a generator)."""

    kind: str = "samples"  # "samples" or "stats"
    length: int | None = None
    cache_key: str | None = None  # stable id for on-disk caches; None = never cached

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        """Yield ``n`` samples in batches of at most ``batch_size``."""
        raise NotImplementedError

    def count(self, n: int | None) -> int:
        """How many samples a request for ``n`` (None = all) gets."""
        if self.length is None:
            if n is None:
                raise ConfigError(f"{self.describe()['type']} is endless: give num_fake/num_real")
            return n
        return self.length if n is None else min(n, self.length)

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


def _subset(length: int, n: int, seed: int) -> np.ndarray:
    """The first n of a seeded permutation (all, in order, when n == length)."""
    if n >= length:
        return np.arange(length)
    return np.sort(np.random.default_rng(seed).permutation(length)[:n])


def _to_float(x: Any) -> torch.Tensor:
    """uint8 NHWC/NHW in [0, 255] or float NCHW/ND in [-1, 1] -> float tensor in [-1, 1]."""
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)
        # arrays from np.load are read-only; torch wants to own writable memory
        x = torch.from_numpy(x if x.flags.writeable else x.copy())
    if x.dtype == torch.uint8:
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise ConfigError(f"uint8 samples must be (N, H, W[, C]), got {tuple(x.shape)}")
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1
    return x.float()


class ArraySource(Source):
    """In-memory samples: (N, C, H, W) / (N, D) float in [-1, 1] or uint8 (N, H, W, C)."""

    def __init__(self, x: Any, name: str = "array") -> None:
        self.x = _to_float(x)
        self.length = len(self.x)
        self.name = name

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        idx = torch.as_tensor(_subset(self.length, n, seed))
        for i in range(0, len(idx), batch_size):
            yield self.x[idx[i : i + batch_size]]

    def describe(self) -> dict[str, Any]:
        return {
            "type": "array",
            "name": self.name,
            "size": self.length,
            "shape": list(self.x.shape[1:]),
        }


class DatasetSource(Source):
    """A map-style Dataset of ``(x, y)``; a seeded random subset when fewer are asked for.

    ``name`` / ``split`` identify it for the reference-statistics cache (default: the
    dataset's ``name`` and ``split`` attributes, else "train"); an unnamed dataset is never
    cached.
    """

    def __init__(self, dataset: Any, name: str | None = None, split: str | None = None) -> None:
        self.dataset = dataset
        self.length = len(dataset)
        self.name = name or getattr(dataset, "name", None)
        split = split or getattr(dataset, "split", None) or "train"
        self.split = split
        shape = getattr(dataset, "shape", None)
        shape = "x".join(map(str, shape)) if shape is not None else "?"
        # the shape is part of the key: one dataset name may be loaded at several sizes
        self.cache_key = f"{self.name}-{split}-{shape}" if self.name else None

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        idx = _subset(self.length, n, seed)
        for i in range(0, len(idx), batch_size):
            if hasattr(self.dataset, "get_batch"):  # gansn.data's one-gather fast path
                yield self.dataset.get_batch(torch.as_tensor(idx[i : i + batch_size]))[0].float()
                continue
            items = [self.dataset[int(j)] for j in idx[i : i + batch_size]]
            yield torch.stack(
                [torch.as_tensor(it[0] if isinstance(it, tuple | list) else it) for it in items]
            ).float()

    def describe(self) -> dict[str, Any]:
        return {"type": "dataset", "name": self.name, "split": self.split, "size": self.length}


class GeneratorSource(Source):
    """Samples from ``sample(n) -> (n, ...)`` tensors in [-1, 1] (endless).

    :meth:`from_module` wraps a generator ``G: (n, z_dim) -> samples`` with z ~ N(0, I)
    drawn from a CPU ``torch.Generator`` seeded per call (same z on every device).
    """

    def __init__(self, sample: Callable[[int], torch.Tensor], name: str = "generator") -> None:
        self.sample = sample
        self.name = name
        self.length = None
        # set by from_module: holds the seeded torch.Generator its z are drawn from
        self._rng: dict[str, Any] | None = None

    @classmethod
    def from_module(
        cls, g: nn.Module, z_dim: int | None = None, device: str | torch.device | None = None
    ) -> GeneratorSource:
        z_dim = z_dim or getattr(g, "z_dim", None)
        if not z_dim:
            raise ConfigError("a generator module needs z_dim (attribute or argument)")
        device = device or next(g.parameters()).device
        state = {"gen": None}

        def sample(n: int) -> torch.Tensor:
            z = torch.randn(n, z_dim, generator=state["gen"]).to(device)
            training = g.training
            g.eval()  # BN running stats, no dropout; restored below so training is unaffected
            try:
                with torch.no_grad():
                    return g(z)
            finally:
                g.train(training)

        src = cls(sample, name=type(g).__name__)
        src._rng = state
        return src

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        # a bare callable draws from the global RNG: seed it inside a fork so the caller's
        # (the trainer's) random stream is left exactly where it was
        with torch.random.fork_rng():
            if self._rng is not None:
                self._rng["gen"] = torch.Generator().manual_seed(seed)
            else:
                torch.manual_seed(seed)
            done = 0
            while done < n:
                b = min(batch_size, n - done)
                x = self.sample(b)
                if len(x) != b:
                    raise ConfigError(f"sample({b}) returned {len(x)} samples")
                done += b
                yield x.detach().float()

    def describe(self) -> dict[str, Any]:
        return {"type": "generator", "name": self.name}


class FolderSource(Source):
    """All images under a directory (recursive, sorted); grayscale stays 1-channel."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.files = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise ConfigError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.path}")
        self.length = len(self.files)
        self.cache_key = f"folder-{self.path.name}-{self.length}"

    def _load(self, p: Path) -> torch.Tensor:
        with Image.open(p) as img:
            img = img.convert("L" if img.mode in ("L", "1", "I;16", "I") else "RGB")
            arr = np.asarray(img, dtype=np.uint8)
        return _to_float(arr[None])[0]

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        idx = _subset(self.length, n, seed)
        for i in range(0, len(idx), batch_size):
            yield torch.stack([self._load(self.files[j]) for j in idx[i : i + batch_size]])

    def describe(self) -> dict[str, Any]:
        return {"type": "folder", "path": str(self.path), "size": self.length}


class StatsSource(Source):
    """Precomputed (mu, sigma) — a reference for FID only."""

    kind = "stats"

    def __init__(
        self, mu: np.ndarray, sigma: np.ndarray, name: str = "stats", n: int | None = None
    ) -> None:
        self.mu, self.sigma, self.name, self.n = mu, sigma, name, n

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        raise ConfigError(
            f"{self.name} holds only mu/sigma statistics: it can serve as the "
            "FID reference but has no samples for other metrics"
        )

    def describe(self) -> dict[str, Any]:
        return {"type": "stats", "name": self.name, "dim": int(self.mu.shape[0]), "n": self.n}


class NpzSource(ArraySource):
    """Samples from a ``.npz`` (see the module docstring for the format)."""

    KEYS = ("x", "samples", "arr_0")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        with np.load(self.path) as f:
            key = next((k for k in self.KEYS if k in f), None)
            if key is None:
                raise ConfigError(
                    f"{self.path}: no samples under {self.KEYS} (keys: {sorted(f.keys())})"
                )
            super().__init__(f[key], name=self.path.name)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "type": "npz", "path": str(self.path)}


def as_source(obj: Any) -> Source:
    """Coerce a dataset, generator, callable, path, array or Source into a Source."""
    if isinstance(obj, Source):
        return obj
    if isinstance(obj, nn.Module) and getattr(obj, "z_dim", None):
        return GeneratorSource.from_module(obj)
    if isinstance(obj, str | Path):
        path = Path(obj).expanduser()
        if path.is_dir():
            return FolderSource(path)
        if path.suffix == ".npz" and path.is_file():
            with np.load(path) as f:
                if "mu" in f and "sigma" in f:
                    return StatsSource(
                        f["mu"].astype(np.float64),
                        f["sigma"].astype(np.float64),
                        name=path.name,
                        n=int(f["n"]) if "n" in f else None,
                    )
            return NpzSource(path)
        raise ConfigError(f"{obj}: not an image folder nor an existing .npz file")
    if isinstance(obj, np.ndarray | torch.Tensor):
        return ArraySource(obj)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return DatasetSource(obj)
    if callable(obj):
        return GeneratorSource(obj, name=getattr(obj, "__name__", "sample"))
    raise ConfigError(f"cannot use {type(obj).__name__} as a sample source")
