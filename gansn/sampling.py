"""Samples, latent interpolations and grids from a generator.

from gansn.checkpoint import load_generator
from gansn.sampling import sample, save_grid
G, spec = load_generator("outputs/2026-11-25/10-00-00")      # EMA G when saved
x = sample(G, 64, seed=0)                                     # (64, C, H, W) in [-1, 1]
save_grid(x, "grid.png", nrow=8)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gansn.utils import atomic_write

log = logging.getLogger(__name__)


@torch.no_grad()
def sample(
    G: nn.Module,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 256,
    z: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``n`` samples on the CPU: (n, *G.shape), images in [-1, 1].

    Latents come from a private ``torch.Generator`` seeded with ``seed`` (the global RNG is
    untouched), so the same seed gives the same samples on every call.
    """
    device = device or next(G.parameters()).device
    if z is None:
        z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat(
        [G(z[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
    )


@torch.no_grad()
def reestimate_batch_norm(G: nn.Module, batches: int, batch_size: int, *, seed: int = 0) -> int:
    """Update every batch norm's population statistics of ``G`` in place, weights frozen:
    ``batches`` train-mode forward passes of fresh latents, each one moving-average step
    (``p <- (1 - momentum) p + momentum * batch``), as PacGAN's training script does before
    each evaluation (Blocks' ``DataStreamMonitoring(updates=bn_updates)`` over 50 batches).

    Latents (batch_size, z_dim) come from a private generator seeded with ``seed`` (the
    global RNG is untouched); G is left in eval mode.  Returns the number of batch-norm
    layers updated (0: G has none, and nothing changed).
    """
    norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    G.eval()
    if not norms or batches <= 0:
        return 0
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    for m in norms:
        m.train()  # only the norms: dropout and other train-mode layers stay in eval mode
    for _ in range(batches):
        G(torch.randn(batch_size, G.z_dim, generator=gen).to(device))
    G.eval()
    return len(norms)


def interpolation_latents(rows: int, cols: int, z_dim: int, *, seed: int = 0) -> torch.Tensor:
    """``rows`` spherical interpolations of ``cols`` steps between random latent pairs.

    Returns (rows * cols, z_dim).  Slerp keeps the norm typical of a Gaussian latent, which
    linear interpolation does not (its midpoints are atypically short).
    """
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(rows, z_dim, generator=g), torch.randn(rows, z_dim, generator=g)
    t = torch.linspace(0, 1, cols).view(1, cols, 1)
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1, 1)).view(rows, 1, 1)
    so = torch.sin(omega).clamp_min(1e-8)
    z = (torch.sin((1 - t) * omega) / so) * a[:, None] + (torch.sin(t * omega) / so) * b[:, None]
    return z.reshape(rows * cols, z_dim)


def to_grid(x: torch.Tensor, nrow: int = 8, *, centers: np.ndarray | None = None) -> torch.Tensor:
    """Samples -> one image (3, H, W) in [0, 1]: an image grid, or a 2-D histogram for points.

    ``x``: (N, C, H, W) images in [-1, 1], or (N, 2) points (``centers``: (K, 2) true modes).
    """
    if x.dim() == 2:
        return render_points(x, centers)
    # imported here: torchvision costs ~1.3 s to import; point data never needs it
    from gansn._torchvision_compat import import_torchvision

    tv = import_torchvision()
    grid = tv.utils.make_grid((x.float().clamp(-1, 1) + 1) / 2, nrow=nrow, padding=2, pad_value=1.0)
    return grid if grid.shape[0] == 3 else grid.expand(3, -1, -1)


def render_points(
    points: torch.Tensor,
    centers: np.ndarray | None = None,
    size: int = 256,
    extent: float | None = None,
    axes: bool = True,
) -> torch.Tensor:
    """(N, 2) points -> (3, H, W) log-density image, true modes marked red.

    Every occupied bin is at least mid-grey (a lone sample shows; dense bins go black) and
    one bin is drawn 2x2 pixels. With ``axes`` the plot gets a frame with ticks and labels in
    data units and a one-line key above it (H, W = ``size`` plus the margins). Needs no
    plotting library, so TensorBoard gets a picture of a toy run every few steps.
    """
    pts = points.detach().float().cpu().numpy()
    if extent is None:
        ref = centers if centers is not None and len(centers) else pts
        extent = float(np.abs(ref).max()) * 1.5 + 0.1
    hist, _, _ = np.histogram2d(
        pts[:, 1], pts[:, 0], bins=size // 2, range=[[-extent, extent], [-extent, extent]]
    )
    dens = np.log1p(hist[::-1])  # y axis up
    dens = np.where(hist[::-1] > 0, 0.45 + 0.55 * dens / max(dens.max(), 1e-8), 0.0)
    dens = np.kron(dens, np.ones((2, 2)))  # one bin = 2x2 pixels
    dens = np.pad(dens, ((0, size - dens.shape[0]), (0, size - dens.shape[1])))
    rgb = np.stack([1 - dens] * 3)  # dark where samples are dense
    if centers is not None:
        for cx, cy in np.asarray(centers):
            c = int((cx + extent) / (2 * extent) * (size - 1))
            r = int((extent - cy) / (2 * extent) * (size - 1))
            rgb[0, max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = 1.0
            rgb[1:, max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3] = 0.0
    if axes:
        rgb = _with_axes(rgb, extent, centers is not None, len(pts))
    return torch.from_numpy(rgb.astype(np.float32))


def _ticks(extent: float) -> list[float]:
    """Round tick values inside [-extent, extent]: about 5 of them, 0 included."""
    raw = extent / 2
    step = 10 ** np.floor(np.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    n = int(extent // step)
    return [k * step for k in range(-n, n + 1)]


# margins of a density image with axes (left, right, top, bottom), and its frame's grey
AXES_MARGINS, FRAME_GREY = (34, 8, 18, 20), (150, 150, 150)


def has_axes(img: np.ndarray) -> bool:
    """Whether ``img`` (H, W, 3 uint8) is a density image drawn with axes by this module
    (images of toy runs from before gansn drew axes are bare, pale 2-D histograms)."""
    left, right, top, bottom = AXES_MARGINS
    h, w = img.shape[0] - top - bottom, img.shape[1] - left - right
    if h <= 0 or h != w:
        return False
    frame = img[top - 1, left - 1 : left + w + 1]
    return bool((frame == np.array(FRAME_GREY, dtype=img.dtype)).all())


def _with_axes(rgb: np.ndarray, extent: float, modes: bool, n: int) -> np.ndarray:
    """The plot ``rgb`` (3, S, S) framed, with ticks and labels in data units and a key."""
    from PIL import ImageDraw, ImageFont

    size = rgb.shape[1]
    left, right, top, bottom = AXES_MARGINS
    img = Image.new("RGB", (left + size + right, top + size + bottom), "white")
    img.paste(Image.fromarray((rgb.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)), (left, top))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    grey, dark = FRAME_GREY, (40, 40, 40)
    draw.rectangle([left - 1, top - 1, left + size, top + size], outline=grey)
    for v in _ticks(extent):
        p = (v + extent) / (2 * extent) * (size - 1)
        x, y = left + p, top + size - 1 - p
        label = f"{v:g}"
        draw.line([x, top + size, x, top + size + 3], fill=grey)
        draw.text((x, top + size + 4), label, fill=dark, font=font, anchor="ma")
        draw.line([left - 4, y, left - 1, y], fill=grey)
        draw.text((left - 6, y), label, fill=dark, font=font, anchor="rm")
    key = f"{n} G samples, log density" + ("; red: true modes" if modes else "")
    draw.text((left, 3), key, fill=dark, font=font)
    return np.asarray(img, dtype=np.float64).transpose(2, 0, 1) / 255.0


def save_image(img: torch.Tensor, path: str | Path) -> Path:
    """(3, H, W) in [0, 1] -> PNG."""
    arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    # atomic: a full disk or a kill mid-write leaves the previous grid (final.png), not half
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))


def to_uint8_nhwc(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8, the layout image tools expect."""
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
