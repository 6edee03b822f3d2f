"""MNIST, Fashion-MNIST, CIFAR-10 and STL-10, held in memory as uint8 tensors.

Files are looked for in torchvision's layout under ``root`` first (``MNIST/raw``,
``FashionMNIST/raw``, ``cifar-10-batches-py``, ``stl10_binary``), so a directory that
torchvision already filled is reused as is.  We read the files ourselves (IDX, the CIFAR
pickles, the STL binaries) rather than through torchvision's classes: the result goes
straight into one uint8 tensor without per-item PIL images, gzipped IDX files work too,
and nothing is checksummed on every start (torchvision verifies MD5s when it downloads).
torchvision is only imported to download, and only when ``download: true``.

Fashion-MNIST is also found in Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``, gzipped IDX files), read in place.
"""

from __future__ import annotations

import gzip
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from gansn.data.base import (
    DATASETS,
    InMemoryImages,
    check_choice,
    convert_channels,
    fit_images,
    resolve_root,
    to_unit_range,
)
from gansn.errors import ConfigError

log = logging.getLogger(__name__)

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a native-endian array.

    Compression is detected from the gzip magic bytes, not the file name.
    Images files give ``(N, H, W)``, label files ``(N,)``.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ConfigError(
            f"{path}: IDX header says shape {dims} ({expected} bytes) but the file has "
            f"{len(raw)} bytes; it is truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


_DOWNLOAD_HINT = (
    "Put the files there, set dataset.root=..., or allow downloading with dataset.download=true."
)


def _not_found(title: str, root: Path, looked_for: str, dirs: list[Path]) -> ConfigError:
    where = ", ".join(str(d) for d in dirs)
    return ConfigError(
        f"{title} not found under {root} (looked for {looked_for} in: {where}). {_DOWNLOAD_HINT}"
    )


def _download(title: str, tv_class: str, root: Path, **kwargs: Any) -> None:
    # imported here: torchvision costs ~1.3 s to import and only a download uses it
    from gansn._torchvision_compat import import_torchvision

    tv = import_torchvision()
    log.info("downloading %s to %s with torchvision.datasets.%s", title, root, tv_class)
    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(tv.datasets, tv_class)(str(root), download=True, **kwargs)
    except Exception as err:  # network, checksum and disk errors all end the run the same way
        raise ConfigError(
            f"downloading {title} to {root} failed: {err}. Download the files by hand into "
            f"{root} or point dataset.root at an existing copy."
        ) from err


def _finish(ds: InMemoryImages, name: str, split: str, source: Path, t0: float) -> InMemoryImages:
    ds.name = name
    ds.split = split  # type: ignore[attr-defined]
    ds.source = source  # type: ignore[attr-defined]
    log.info(
        "loaded %s/%s from %s: %d images %s in %.1fs",
        name,
        split,
        source,
        len(ds),
        ds.shape,
        time.perf_counter() - t0,
    )
    return ds


def _subset(n: int | None, count: int, name: str) -> int:
    if n is None:
        return count
    if not 0 < n <= count:
        raise ConfigError(f"dataset {name}: n must be in 1..{count} for this split, got {n}")
    return n


# --------------------------------------------------------------------------- MNIST family


@dataclass(frozen=True)
class _IdxSpec:
    title: str  # for messages
    tv_class: str  # torchvision class, whose name is also its folder under root
    aliases: tuple[str, ...]  # other folder names people unpack into
    system_dirs: tuple[str, ...]  # distribution packages, read in place


_MNIST = _IdxSpec("MNIST", "MNIST", ("mnist", "MNIST"), ())
_FASHION = _IdxSpec(
    "Fashion-MNIST",
    "FashionMNIST",
    ("fashion-mnist", "fashion_mnist"),
    ("/usr/share/datasets/fashion-mnist",),
)


def _idx_dirs(spec: _IdxSpec, root: Path) -> list[Path]:
    dirs = [root / spec.tv_class / "raw"] + [root / a for a in spec.aliases] + [root]
    return dirs + [Path(d) for d in spec.system_dirs]


def find_idx_files(spec: _IdxSpec, root: Path, split: str) -> tuple[Path, Path] | None:
    """``(images, labels)`` paths for ``split`` from the first directory that has both."""
    prefix = "train" if split == "train" else "t10k"
    for d in _idx_dirs(spec, root):
        found = []
        for kind in ("images-idx3", "labels-idx1"):
            base = d / f"{prefix}-{kind}-ubyte"
            found.append(
                next((p for p in (base, base.with_name(base.name + ".gz")) if p.is_file()), None)
            )
        if all(found):
            return found[0], found[1]  # type: ignore[return-value]
    return None


class StackedImages(Dataset):
    """Stacked MNIST (Metz et al. 2017; PacGAN): three independently drawn grayscale
    images as the R, G, B channels; label ``100 * y0 + 10 * y1 + y2`` (1000 classes).

    Only the ``(n, 3)`` index triplets are stored; ``get_batch`` gathers from the base
    images, so the stacked set costs no more memory than the base one.
    """

    stacked = True

    def __init__(self, base: InMemoryImages, n: int, seed: int, name: str) -> None:
        if base.shape[0] != 1:
            raise ConfigError(f"stacked {name} needs 1-channel base images, got {base.shape}")
        g = torch.Generator().manual_seed(int(seed))
        self.base = base
        self.name = name
        self.triplets = torch.randint(0, len(base), (n, 3), generator=g)
        digits = base.labels[self.triplets]
        self.labels = digits @ torch.tensor([100, 10, 1])
        self.num_classes: int | None = 1000
        self.shape: tuple[int, ...] = (3, *base.shape[1:])

    def __len__(self) -> int:
        return self.triplets.shape[0]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B,)`` int64 -> ``x (B, 3, H, W)`` float32 in [-1, 1], ``y (B,)`` in 0..999."""
        x = self.base.images[self.triplets[indices]]  # (B, 3, 1, H, W)
        return to_unit_range(x.flatten(-4, -3)), self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.base.images[self.triplets[index]]  # (3, 1, H, W)
        return to_unit_range(x.flatten(0, 1)), self.labels[index]

    def __repr__(self) -> str:
        return f"StackedImages(name={self.name!r}, n={len(self)}, shape={self.shape})"


def _load_idx_dataset(
    spec: _IdxSpec,
    name: str,
    *,
    train: bool,
    root: str | None,
    split: str | None,
    img_size: int,
    resize: str,
    interpolation: str,
    channels: int | None,
    download: bool,
    stacked: bool,
    n: int | None,
    seed: int,
) -> Dataset:
    t0 = time.perf_counter()
    split = check_choice(
        f"dataset {name}: split", split or ("train" if train else "test"), ("train", "test")
    )
    if stacked and channels not in (None, 3):
        raise ConfigError(f"stacked {name} is 3-channel; set dataset.channels=null or 3")
    base = resolve_root(root)
    files = find_idx_files(spec, base, split)
    if files is None and download:
        _download(spec.title, spec.tv_class, base, train=split == "train")
        files = find_idx_files(spec, base, split)
    if files is None:
        prefix = "train" if split == "train" else "t10k"
        raise _not_found(
            spec.title,
            base,
            f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]",
            _idx_dirs(spec, base),
        )
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ConfigError(
            f"{files[0]} / {files[1]}: unexpected shapes {images.shape}, {labels.shape}"
        )
    count = len(images) if stacked else _subset(n, len(images), name)
    x = fit_images(images[:count, None], img_size, resize, interpolation)
    y = torch.as_tensor(labels[:count].astype(np.int64))
    if stacked:
        ds = _finish(InMemoryImages(x, y, 10), name, split, files[0].parent, t0)
        length = n if n is not None else count
        if length < 1:
            raise ConfigError(f"dataset {name}: n must be positive, got {n}")
        # the held-out stacked set draws different triplets, as a test split should
        stacked_ds = StackedImages(ds, length, seed + (0 if split == "train" else 1), name)
        stacked_ds.split = split  # type: ignore[attr-defined]
        return stacked_ds
    x = convert_channels(x, channels)
    return _finish(InMemoryImages(x, y, 10), name, split, files[0].parent, t0)


@DATASETS.register("mnist")
def mnist(
    *,
    train: bool = True,
    root: str | None = None,
    split: str | None = None,
    img_size: int = 32,
    resize: str = "pad",
    interpolation: str = "bilinear",
    channels: int | None = None,
    download: bool = False,
    stacked: bool = False,
    n: int | None = None,
    seed: int = 0,
) -> Dataset:
    """MNIST digits, 28x28 gray -> ``(channels or 1, img_size, img_size)``; 10 classes.

    ``stacked=True`` gives Stacked MNIST (``n`` triplets drawn with ``seed``, 1000 classes);
    otherwise ``n`` keeps the first ``n`` images (``None``: all).
    """
    return _load_idx_dataset(
        _MNIST,
        "mnist",
        train=train,
        root=root,
        split=split,
        img_size=img_size,
        resize=resize,
        interpolation=interpolation,
        channels=channels,
        download=download,
        stacked=stacked,
        n=n,
        seed=seed,
    )


@DATASETS.register("fashion_mnist")
def fashion_mnist(
    *,
    train: bool = True,
    root: str | None = None,
    split: str | None = None,
    img_size: int = 32,
    resize: str = "pad",
    interpolation: str = "bilinear",
    channels: int | None = None,
    download: bool = False,
    stacked: bool = False,
    n: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Fashion-MNIST, as :func:`mnist`; also found in ``/usr/share/datasets/fashion-mnist``."""
    return _load_idx_dataset(
        _FASHION,
        "fashion_mnist",
        train=train,
        root=root,
        split=split,
        img_size=img_size,
        resize=resize,
        interpolation=interpolation,
        channels=channels,
        download=download,
        stacked=stacked,
        n=n,
        seed=seed,
    )


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def read_cifar10(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The python-pickle CIFAR-10 batches -> uint8 ``(N, 3, 32, 32)``, int64 ``(N,)``."""
    xs, ys = [], []
    for fname in _CIFAR_FILES[split]:
        with open(directory / fname, "rb") as f:
            entry = pickle.load(f, encoding="latin1")  # the format the CIFAR authors ship
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


@DATASETS.register("cifar10")
def cifar10(
    *,
    train: bool = True,
    root: str | None = None,
    split: str | None = None,
    img_size: int = 32,
    resize: str = "resize",
    interpolation: str = "bilinear",
    channels: int | None = None,
    download: bool = False,
    n: int | None = None,
) -> Dataset:
    """CIFAR-10, 32x32 RGB -> ``(channels or 3, img_size, img_size)``; 10 classes."""
    t0 = time.perf_counter()
    split = check_choice(
        "dataset cifar10: split", split or ("train" if train else "test"), ("train", "test")
    )
    base = resolve_root(root)
    dirs = [base / _CIFAR_DIR, base]

    def find() -> Path | None:
        return next((d for d in dirs if all((d / f).is_file() for f in _CIFAR_FILES[split])), None)

    found = find()
    if found is None and download:
        _download("CIFAR-10", "CIFAR10", base, train=split == "train")
        found = find()
    if found is None:
        raise _not_found("CIFAR-10", base, ", ".join(_CIFAR_FILES[split]), dirs)
    images, labels = read_cifar10(found, split)
    count = _subset(n, len(images), "cifar10")
    x = convert_channels(fit_images(images[:count], img_size, resize, interpolation), channels)
    ds = InMemoryImages(x, torch.as_tensor(labels[:count]), 10)
    return _finish(ds, "cifar10", split, found, t0)


# --------------------------------------------------------------------------- STL-10

_STL_DIR = "stl10_binary"
_STL_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
_STL_PARTS = {
    "train": ["train"],
    "test": ["test"],
    "unlabeled": ["unlabeled"],
    "train+unlabeled": ["train", "unlabeled"],
}


def read_stl10_images(path: Path) -> np.ndarray:
    """An STL-10 ``*_X.bin`` as a read-only memory map, uint8 ``(N, 3, 96, 96)``.

    The files store each channel column-major, hence the H/W swap (a view, no copy).
    Memory-mapping lets the unlabeled split (2.8 GB) be resized chunk by chunk.
    """
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    if mm.size % (3 * 96 * 96):
        raise ConfigError(f"{path}: size {mm.size} is not a multiple of 3*96*96")
    return mm.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)


@DATASETS.register("stl10")
def stl10(
    *,
    train: bool = True,
    root: str | None = None,
    split: str | None = None,
    img_size: int = 48,
    resize: str = "resize",
    interpolation: str = "bilinear",
    channels: int | None = None,
    download: bool = False,
    n: int | None = None,
) -> Dataset:
    """STL-10, 96x96 RGB resized (antialiased) to ``img_size`` (48 as in SNGAN).

    Default split: ``train+unlabeled`` (105k images, unlabeled ones have label -1) for
    training, ``test`` otherwise.  ``num_classes`` is None for ``unlabeled``, else 10.
    """
    t0 = time.perf_counter()
    split = check_choice(
        "dataset stl10: split", split or ("train+unlabeled" if train else "test"), _STL_SPLITS
    )
    base = resolve_root(root)
    dirs = [base / _STL_DIR, base]
    needed = []
    for part in _STL_PARTS[split]:
        needed += [f"{part}_X.bin"] + ([f"{part}_y.bin"] if part != "unlabeled" else [])

    def find() -> Path | None:
        return next((d for d in dirs if all((d / f).is_file() for f in needed)), None)

    if n is not None and n < 1:
        raise ConfigError(f"dataset stl10: n must be positive, got {n}")
    found = find()
    if found is None and download:
        _download("STL-10", "STL10", base, split=split)
        found = find()
    if found is None:
        raise _not_found("STL-10", base, ", ".join(needed), dirs)
    xs, ys = [], []
    remaining = n
    for part in _STL_PARTS[split]:
        images = read_stl10_images(found / f"{part}_X.bin")
        if part == "unlabeled":
            labels = np.full(len(images), -1, dtype=np.int64)
        else:
            labels = np.fromfile(found / f"{part}_y.bin", dtype=np.uint8).astype(np.int64) - 1
            if len(labels) != len(images):
                raise ConfigError(f"{found}: {len(images)} {part} images but {len(labels)} labels")
        if remaining is not None:
            images, labels = images[:remaining], labels[:remaining]
            remaining -= len(images)
        if len(images):
            xs.append(
                convert_channels(fit_images(images, img_size, resize, interpolation), channels)
            )
            ys.append(torch.as_tensor(labels))
        if remaining is not None and remaining <= 0:
            break
    total = sum(len(x) for x in xs)
    if n is not None and total < n:
        raise ConfigError(f"dataset stl10: n must be in 1..{total} for split {split}, got {n}")
    x = xs[0] if len(xs) == 1 else torch.cat(xs)
    y = ys[0] if len(ys) == 1 else torch.cat(ys)
    ds = InMemoryImages(x, y, None if split == "unlabeled" else 10)
    return _finish(ds, "stl10", split, found, t0)
