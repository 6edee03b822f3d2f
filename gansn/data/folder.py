"""Image folders (loaded per item) and a synthetic image set for tests (no files)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from gansn.data.base import DATASETS, InMemoryImages, check_choice, to_unit_range
from gansn.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
)


RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
}

# what PIL raises on a file that is not an image, is cut short or is damaged: OSError
# (UnidentifiedImageError, "image file is truncated"), SyntaxError/ValueError (broken
# chunks), EOFError, and its guard against decompression bombs
_BAD_IMAGE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _unreadable(path: Path, err: BaseException) -> DataError:
    why = str(err).strip() or type(err).__name__
    return DataError(
        f"image {path} cannot be read ({why}): it is corrupt, truncated or not an image; "
        "replace or remove it"
    )


def image_header(path: Path) -> tuple[int, int, str]:
    """``(width, height, PIL mode)`` from the file's header, without decoding the pixels.

    Raises ``ConfigError`` naming the file when it is not a readable image.
    """
    try:
        with Image.open(path) as im:
            return im.size[0], im.size[1], im.mode
    except _BAD_IMAGE as err:
        raise _unreadable(path, err) from None


def read_image(
    path: Path, mode: str, img_size: int | None, resample: Image.Resampling
) -> np.ndarray:
    """Decode ``path`` as ``mode`` ("RGB"/"L") -> uint8 (H, W, 3) or (H, W).

    With ``img_size``: center-crop to a square, then resize to ``img_size`` x ``img_size``
    (training's transform, shared by gansn-eval's image folders).  A corrupt or truncated
    file raises ``ConfigError`` naming it.
    """
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if img_size is not None:
                w, h = im.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                # crop before resizing: resize(box=...) lets the filter read pixels outside
                # the box, which would bleed the cropped-away margins into the border
                im = im.crop((left, top, left + s, top + s))
                if im.size != (img_size, img_size):
                    # PIL filters over the whole footprint when shrinking: it antialiases
                    im = im.resize((img_size, img_size), resample)
            return np.asarray(im, dtype=np.uint8).copy()
    except _BAD_IMAGE as err:
        raise _unreadable(path, err) from None


class ImageFolder(Dataset):
    """Every image under ``root`` (recursive), center-cropped and resized to ``img_size``.

    Items are decoded per access, so this set has no ``get_batch``; BatchStream feeds it
    through a DataLoader (use ``num_workers`` > 0 for speed).  With ``labels=True`` the
    label is the index of the top-level subfolder (sorted names, as torchvision's
    ImageFolder), else -1.
    """

    stacked = False

    def __init__(
        self,
        root: Path,
        img_size: int,
        channels: int,
        labels: bool,
        extensions: tuple[str, ...],
        interpolation: str,
    ) -> None:
        self.name = "folder"
        self.root = root
        self.img_size = img_size
        self.channels = check_choice("dataset folder: channels", channels, (1, 3))
        self.shape: tuple[int, ...] = (channels, img_size, img_size)
        self._mode = "RGB" if channels == 3 else "L"
        self._resample = RESAMPLE[check_choice("interpolation", interpolation, tuple(RESAMPLE))]
        if not root.is_dir():
            raise ConfigError(
                f"image folder {root} does not exist or is not a directory; "
                "set dataset.root=/path/to/images"
            )
        exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())
        if not self.files:
            raise ConfigError(
                f"no images found under {root} (looked recursively for {', '.join(sorted(exts))})"
            )
        # every header now (cheap: no pixels are decoded), so a file that is no image stops
        # the run before anything is written; one truncated past its header is named when
        # it is first loaded
        for p in self.files:
            image_header(p)
        if labels:
            top = [p.relative_to(root).parts for p in self.files]
            loose = [self.files[i] for i, parts in enumerate(top) if len(parts) == 1]
            if loose:
                raise ConfigError(
                    f"dataset.labels=true takes the class from the subfolder, but {len(loose)} "
                    f"image(s) sit directly in {root} (e.g. {loose[0].name}); move them into "
                    "class subfolders or set dataset.labels=false"
                )
            self.classes = sorted({parts[0] for parts in top})
            index = {c: i for i, c in enumerate(self.classes)}
            self.labels = torch.tensor([index[parts[0]] for parts in top], dtype=torch.int64)
            self.num_classes: int | None = len(self.classes)
        else:
            self.classes = []
            self.labels = torch.full((len(self.files),), -1, dtype=torch.int64)
            self.num_classes = None
        log.info("folder %s: %d images, %d classes", root, len(self.files), len(self.classes))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (C, img_size, img_size)`` float32 in [-1, 1], ``y`` 0-d int64."""
        arr = read_image(self.files[index], self._mode, self.img_size, self._resample)
        x = torch.from_numpy(arr)
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        return to_unit_range(x), self.labels[index]

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, n={len(self)}, shape={self.shape})"


@DATASETS.register("folder")
def folder(
    *,
    train: bool = True,
    root: str | None = None,
    img_size: int = 64,
    channels: int = 3,
    labels: bool = False,
    extensions: list[str] | None = None,
    interpolation: str = "bicubic",
) -> ImageFolder:
    """Any folder of images; ``train`` is ignored (a folder has one split)."""
    if root is None or str(root) == "":
        raise ConfigError("dataset=folder needs the image directory: set dataset.root=/path")
    exts = tuple(extensions) if extensions else IMAGE_EXTENSIONS
    return ImageFolder(
        Path(root).expanduser(), int(img_size), int(channels), bool(labels), exts, interpolation
    )


@DATASETS.register("fake")
def fake(
    *,
    train: bool = True,
    n: int = 256,
    img_size: int = 32,
    channels: int = 3,
    num_classes: int = 10,
    seed: int = 0,
) -> InMemoryImages:
    """Smooth random images for tests: class pattern + per-image noise, both low-frequency.

    Deterministic given ``seed``; the held-out set (``train=False``) draws other images
    of the same classes (``seed + 1`` for the per-image part).
    """
    if n < 1 or img_size < 1 or channels < 1 or num_classes < 1:
        raise ConfigError(
            f"dataset fake: n, img_size, channels, num_classes must be positive; got "
            f"{n}, {img_size}, {channels}, {num_classes}"
        )
    g_class = torch.Generator().manual_seed(int(seed))
    g = torch.Generator().manual_seed(int(seed) + (0 if train else 1))
    patterns = torch.rand(num_classes, channels, 4, 4, generator=g_class)
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    noise = torch.rand(n, channels, 4, 4, generator=g)
    low = 0.6 * patterns[labels] + 0.4 * noise
    # bilinear upsampling of a 4x4 grid gives smooth images that still have structure
    x = F.interpolate(low, size=(img_size, img_size), mode="bilinear", align_corners=False)
    images = (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    ds = InMemoryImages(images, labels, num_classes)
    ds.name = "fake"
    return ds
