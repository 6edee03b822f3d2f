"""The dataset registry, :func:`build_dataset`, and what every dataset shares.

Contract (every registered dataset):

* ``ds[i] -> (x, y)``: ``x`` float32, images ``(C, H, W)`` in ``[-1, 1]`` or points ``(2,)``;
  ``y`` a 0-d int64 tensor (``-1`` when unlabeled).
* attributes ``name: str``, ``shape: tuple[int, ...]`` (shape of one ``x``),
  ``num_classes: int | None``, ``stacked: bool`` (Stacked MNIST: label = 100 y0 + 10 y1 + y2).
* in-memory datasets also have ``get_batch(indices: (B,) int64) -> (x (B, *shape), y (B,))``,
  one indexing op per batch; :class:`gansn.data.BatchStream` uses it instead of a DataLoader.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gansn.errors import ConfigError
from gansn.registry import Registry, check_options, split_kwargs

log = logging.getLogger(__name__)

DATASETS: Registry[Any] = Registry("dataset")

DEFAULT_ROOT = "~/.cache/gansn/data"
"""Where datasets live when neither ``dataset.root`` nor ``$GANSN_DATA`` says otherwise."""

INTERPOLATIONS = ("bilinear", "bicubic", "area", "nearest")


def default_root() -> Path:
    """``$GANSN_DATA`` if set, else ``~/.cache/gansn/data``."""
    return Path(os.environ.get("GANSN_DATA") or DEFAULT_ROOT).expanduser()


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root for a ``root`` option; ``None``/empty means :func:`default_root`."""
    if root is None or str(root) == "":
        return default_root()
    return Path(root).expanduser()


def _plain(cfg: Any) -> dict[str, Any]:
    """A plain dict from a dict or an OmegaConf ``DictConfig`` (interpolations resolved)."""
    try:  # imported here: the package stays importable without Hydra/OmegaConf
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # gansn must stay importable without Hydra
        DictConfig = None
    if DictConfig is not None and isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"dataset config must be a mapping with a 'name' key, got {cfg!r}")
    return dict(cfg)


def dataset_options(factory: Any) -> list[str]:
    """The option names a registered dataset accepts (``train`` is passed by build_dataset)."""
    params = inspect.signature(factory).parameters
    return sorted(
        p
        for p, v in params.items()
        if p not in ("self", "train") and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD)
    )


def build_dataset(cfg: Mapping[str, Any], train: bool = True) -> Dataset:
    """Build the dataset described by a config node ``{name: ..., **options}``.

    ``train`` picks the training or the held-out split when the config leaves ``split``
    (or, for synthetic data, the sample stream) unset, so metrics can ask for the test
    split of whatever dataset the run trains on.

    Raises ``UnknownNameError`` (listing valid names) for an unknown name and
    ``ConfigError`` naming the keys for unknown options.
    """
    name, options = split_kwargs(_plain(cfg))
    factory = DATASETS.get(name)
    check_options(f"dataset {name!r}", factory, options, given=("train",))
    return factory(train=train, **options)


def check_choice(what: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise a ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., C, H, W)`` in [0, 255] -> float32 in [-1, 1] (0 -> -1, 255 -> 1 exactly)."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> ``(N, channels, H, W)``.

    Gray -> RGB is an ``expand`` (a stride-0 view), so storing a 3-channel MNIST costs no
    extra memory until a batch is indexed out of it.  RGB -> gray uses the ITU-R 601 luma
    weights, as PIL's ``convert("L")`` does, so it matches images converted elsewhere.
    """
    c = images.shape[1]
    if channels is None or channels == c:
        return images
    if channels == 3 and c == 1:
        return images.expand(-1, 3, -1, -1)
    if channels == 1 and c == 3:
        w = torch.tensor([299, 587, 114], dtype=torch.int32).view(1, 3, 1, 1)
        return (
            ((images.to(torch.int32) * w).sum(1, keepdim=True) + 500)
            .div(1000, rounding_mode="floor")
            .to(torch.uint8)
        )
    raise ConfigError(f"cannot convert {c}-channel images to {channels} channels (use 1 or 3)")


def fit_images(
    images: np.ndarray | torch.Tensor,
    img_size: int,
    mode: str,
    interpolation: str = "bilinear",
    chunk: int = 2048,
) -> torch.Tensor:
    """Bring uint8 ``(N, C, h, w)`` images to uint8 ``(N, C, img_size, img_size)``.

    ``mode="pad"`` centers them on a black (-1) canvas (28 -> 32 for MNIST, as in DCGAN-style
    32x32 pipelines; an odd margin puts the extra row/column bottom-right).
    ``mode="resize"`` resamples with antialiasing (bilinear/bicubic), center-cropping
    non-square images first.  Works in chunks so a memory-mapped STL-10 (2.9 GB) is never
    converted to float all at once.
    """
    check_choice("resize", mode, ("pad", "resize"))
    n, c, h, w = images.shape
    if h == w == img_size:
        return torch.as_tensor(np.ascontiguousarray(images))
    if mode == "pad":
        if img_size < max(h, w):
            raise ConfigError(
                f"cannot pad {h}x{w} images to img_size={img_size}; "
                "set dataset.resize=resize to shrink them"
            )
        top, left = (img_size - h) // 2, (img_size - w) // 2
        out = torch.zeros(n, c, img_size, img_size, dtype=torch.uint8)
        out[:, :, top : top + h, left : left + w] = torch.as_tensor(np.ascontiguousarray(images))
        return out
    check_choice("interpolation", interpolation, INTERPOLATIONS)
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    out = torch.empty(n, c, img_size, img_size, dtype=torch.uint8)
    kwargs: dict[str, Any] = {"mode": interpolation}
    if interpolation in ("bilinear", "bicubic"):
        kwargs.update(align_corners=False, antialias=True)
    for i in range(0, n, chunk):
        block = torch.as_tensor(np.ascontiguousarray(images[i : i + chunk]))
        block = block[:, :, top : top + s, left : left + s].to(torch.float32)
        block = F.interpolate(block, size=(img_size, img_size), **kwargs)
        # bicubic overshoots; round, not truncate, so a constant image stays constant
        out[i : i + chunk] = block.round_().clamp_(0, 255).to(torch.uint8)
    return out


class InMemoryImages(Dataset):
    """Images held as one uint8 tensor ``(N, C, H, W)``, already padded/resized.

    ``get_batch`` converts only the requested rows to float, so a 64-image batch is one
    gather plus one multiply-add -- far cheaper than per-item PIL transforms on 2 cores.
    """

    name: str = "images"
    stacked: bool = False  # True only for Stacked MNIST (gansn.data.vision.StackedImages)

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int | None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.num_classes = num_classes
        self.shape: tuple[int, ...] = tuple(images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B,)`` int64 indices -> ``x (B, C, H, W)`` float32 in [-1, 1], ``y (B,)`` int64."""
        return to_unit_range(self.images[indices]), self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (C, H, W)`` float32 in [-1, 1], ``y`` 0-d int64."""
        return to_unit_range(self.images[index]), self.labels[index]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, shape={self.shape}, "
            f"num_classes={self.num_classes})"
        )
