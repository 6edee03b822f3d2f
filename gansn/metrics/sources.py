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
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gansn.data.base import check_choice
from gansn.data.folder import RESAMPLE, image_header, read_image
from gansn.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_GRAY_MODES = ("L", "1", "I;16", "I", "LA")  # read as 1-channel (as before: "LA" drops alpha)

# what np.load and reading an array out of a damaged or foreign .npz raise
_BAD_NPZ = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


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
        state: dict[str, Any] = {"gen": None, "z_dim": z_dim}

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

    @property
    def shardable(self) -> bool:
        """Whether :meth:`batches` can hand each rank its share (a generator module: its z
        come from a seeded stream that every rank can replay)."""
        return self._rng is not None

    def batches(
        self, n: int, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[torch.Tensor]:
        """Batches of ``batch_size`` (the last one smaller) of ``n`` samples.

        ``shard=(rank, world_size)`` (a :attr:`shardable` source only): this rank's batches
        ``rank, rank + world_size, ...`` of the same sequence; every rank draws all z so
        each batch has the z it has in one process.
        """
        rank, world = shard
        if world > 1 and not self.shardable:
            raise ValueError("only a generator module's samples can be sharded")
        # a bare callable draws from the global RNG: seed it inside a fork so the caller's
        # (the trainer's) random stream is left exactly where it was
        with torch.random.fork_rng():
            if self._rng is not None:
                self._rng["gen"] = torch.Generator().manual_seed(seed)
            else:
                torch.manual_seed(seed)
            done, i = 0, 0
            while done < n:
                b = min(batch_size, n - done)
                if i % world == rank:
                    x = self.sample(b)
                    if len(x) != b:
                        raise ConfigError(f"sample({b}) returned {len(x)} samples")
                    yield x.detach().float()
                else:
                    self._skip(b)
                done, i = done + b, i + 1

    def _skip(self, b: int) -> None:
        """Advance the z stream past a batch another rank generates."""
        torch.randn(b, self._rng["z_dim"], generator=self._rng["gen"])  # type: ignore[index]

    def describe(self) -> dict[str, Any]:
        return {"type": "generator", "name": self.name}


class FolderSource(Source):
    """All images under a directory (recursive, sorted).

    Images of one size are used as they are (grayscale stays 1-channel).  A folder of mixed
    sizes is treated as training's ``dataset=folder`` treats every folder: each image is
    center-cropped to a square and resized (PIL, antialiased, ``interpolation``) to
    ``img_size`` x ``img_size`` -- by default the most common size's shorter side.  Giving
    ``img_size`` applies that transform to every image, exactly as training does.  A folder
    mixing grayscale and colour images is read as RGB unless ``channels`` says otherwise.
    Every file's header is read up front, so a file that is no image is named before any
    work; one truncated past its header is named when it is decoded.
    """

    def __init__(
        self,
        path: str | Path,
        img_size: int | None = None,
        channels: int | None = None,
        interpolation: str = "bicubic",
    ) -> None:
        self.path = Path(path).expanduser()
        self.files = sorted(
            p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        if not self.files:
            raise ConfigError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {self.path}")
        if channels not in (None, 1, 3):
            raise ConfigError(
                f"channels must be 1 or 3 for image folder {self.path}, got {channels!r}"
            )
        if img_size is not None and (
            isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1
        ):
            raise ConfigError(f"img_size must be a positive integer, got {img_size!r}")
        self.resample = RESAMPLE[check_choice("interpolation", interpolation, tuple(RESAMPLE))]
        headers = [image_header(p) for p in self.files]
        sizes = Counter((w, h) for w, h, _ in headers)
        if img_size is None and len(sizes) > 1:
            (w, h), count = sizes.most_common(1)[0]
            img_size = min(w, h)
            log.warning(
                "%s holds images of %d sizes (%d of %dx%d); center-cropping and resizing every "
                "image to %dx%d as training's dataset=folder does (choose the size with "
                "dataset={img_size: N})",
                self.path,
                len(sizes),
                count,
                w,
                h,
                img_size,
                img_size,
            )
        self.img_size = img_size
        if channels is None:
            channels = 1 if all(m in _GRAY_MODES for _, _, m in headers) else 3
        self.mode = "L" if channels == 1 else "RGB"
        w, h = (img_size, img_size) if img_size is not None else next(iter(sizes))
        self.shape = (channels, h, w)
        self.length = len(self.files)
        # a resized folder's statistics are not the original images': another cache entry
        resized = "" if img_size is None else f"-{img_size}px"
        self.cache_key = f"folder-{self.path.name}-{self.length}{resized}"

    def _load(self, p: Path) -> torch.Tensor:
        arr = read_image(p, self.mode, self.img_size, self.resample)
        return _to_float(arr[None])[0]

    def batches(self, n: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        idx = _subset(self.length, n, seed)
        for i in range(0, len(idx), batch_size):
            yield torch.stack([self._load(self.files[j]) for j in idx[i : i + batch_size]])

    def describe(self) -> dict[str, Any]:
        out = {"type": "folder", "path": str(self.path), "size": self.length}
        if self.img_size is not None:
            out["resize"] = f"center crop, {self.img_size}px"
        return out


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
        try:
            with np.load(self.path) as f:
                keys = sorted(f.keys())
                key = next((k for k in self.KEYS if k in f), None)
                x = f[key] if key is not None else None
        except _BAD_NPZ as err:
            raise _unreadable_npz(self.path, err) from None
        if x is None:
            raise ConfigError(f"{self.path}: no samples under {self.KEYS} (keys: {keys})")
        if (
            x.ndim not in (2, 3, 4)
            or len(x) == 0
            or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating))
        ):
            raise ConfigError(
                f"{self.path}: {key} is {x.dtype} {x.shape}; expected uint8 images (N, H, W[, C]) "
                "or float32 images (N, C, H, W) / points (N, D), N >= 1"
            )
        if x.ndim == 4 and x.dtype != np.uint8 and x.size:
            lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
            # a little slack for round-off; [0, 1] or [0, 255] floats would be read as
            # images of another brightness and give a plausible, wrong number
            if not (lo >= -1.01 and hi <= 1.01):
                raise ConfigError(
                    f"{self.path}: {key} holds float images with values in [{lo:g}, {hi:g}]; "
                    "expected float images in [-1, 1] (or uint8 images in [0, 255])"
                )
        try:
            super().__init__(x, name=self.path.name)
        except ConfigError as err:
            raise ConfigError(f"{self.path}: {err}") from None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "type": "npz", "path": str(self.path)}


# what a .npz starts with: a zip archive (numpy.savez), or a bare .npy that np.load reads too
_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")


def _unreadable_npz(path: Path, err: BaseException) -> DataError:
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        head = b""
    if not head.startswith(_NPZ_MAGIC):  # np.load calls any other file "pickled"
        return DataError(
            f"{path} is not an npz file (it does not start as a zip archive); expected a .npz "
            "as numpy.savez or gansn-sample npz=... writes it"
        )
    why = str(err).strip() or type(err).__name__
    return DataError(
        f"{path} cannot be read as a .npz ({why}): it is corrupt, truncated or holds "
        "pickled objects"
    )


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
            try:
                with np.load(path) as f:
                    stats = None
                    if "mu" in f and "sigma" in f:
                        stats = (f["mu"], f["sigma"], int(f["n"]) if "n" in f else None)
            except _BAD_NPZ as err:
                raise _unreadable_npz(path, err) from None
            if stats is None:
                return NpzSource(path)
            mu, sigma, n = stats
            d = mu.shape[0] if mu.ndim == 1 else -1
            if d < 1 or sigma.shape != (d, d):
                raise ConfigError(
                    f"{path}: mu {mu.shape} and sigma {sigma.shape} are not pytorch-fid "
                    "statistics (mu (d,), sigma (d, d))"
                )
            return StatsSource(mu.astype(np.float64), sigma.astype(np.float64), path.name, n)
        raise ConfigError(f"{obj}: not an image folder nor an existing .npz file")
    if isinstance(obj, np.ndarray | torch.Tensor):
        return ArraySource(obj)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return DatasetSource(obj)
    if callable(obj):
        return GeneratorSource(obj, name=getattr(obj, "__name__", "sample"))
    raise ConfigError(f"cannot use {type(obj).__name__} as a sample source")
