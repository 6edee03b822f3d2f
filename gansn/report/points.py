"""The report's figures of what G draws: 2-D point clouds over the true modes, and sample
montages (a grid's tiles enlarged, a density image made readable).  Same contract as
:mod:`gansn.report.plots`: ``*_figure(setting, path)`` returns the caption, or None.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gansn.checkpoint import load_models
from gansn.data import build_dataset
from gansn.report.aggregate import Setting
from gansn.report.collect import Run
from gansn.report.plots import _color, _grid, _save, _seed_text, pick_runs, require_matplotlib
from gansn.sampling import has_axes, sample

# Sample tiles are enlarged (nearest neighbour) to at least this many pixels a side.
MIN_TILE_PX = 96
# Tiles per side shown of each norm's grid: 16 readable samples beat 64 thumbnails.
TILES_PER_SIDE = 4
# Figures are laid out for a page this wide (the HTML report's column is 1200 px).
PAGE_PX = 1200
# Margin around the real data in the point-cloud view, as a fraction of its extent.
VIEW_MARGIN = 0.25


def _real_points(run: Run, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Up to ``n`` real training points of the run's dataset (None if it cannot give them)
    and its true mode centers (None if it has none)."""
    ds = build_dataset(run.config["dataset"])
    centers = getattr(ds, "centers", None)
    centers = None if centers is None else np.asarray(centers, dtype=float)
    if not hasattr(ds, "get_batch") or not len(ds):
        return None, centers
    x = ds.get_batch(torch.arange(min(n, len(ds))))[0]
    return x.reshape(len(x), -1).double().numpy(), centers


def points_view(
    points: Iterable[np.ndarray], real: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(lo, hi)`` corners of one square view for every panel: the real data's extent
    plus a margin, so a norm whose samples flew off cannot squash the others' panels.

    Without real data, each norm's 1-99 % quantiles and their median across norms: a
    diverged norm moves the median no further than the runs next to it.
    """
    if real is not None and len(real):
        lo, hi = real.min(axis=0), real.max(axis=0)
    else:
        q = np.stack([np.percentile(p, [1, 99], axis=0) for p in points])
        lo, hi = np.median(q[:, 0], axis=0), np.median(q[:, 1], axis=0)
    half = float((hi - lo).max()) / 2 * (1 + 2 * VIEW_MARGIN)
    half = half if half > 0 else 1.0  # data at one point still gets a view
    mid = (lo + hi) / 2
    return mid - half, mid + half


def to_frame(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(N, 2) points outside the box ``lo``-``hi`` -> where the ray from the box's center
    to each leaves the box (per-axis clipping would pile every far point into a corner)."""
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    d = points - mid
    # the largest t in (0, 1] with mid + t * d inside the box, per point
    t = np.min(np.where(d != 0, half / np.maximum(np.abs(d), 1e-300), np.inf), axis=1)
    return mid + d * np.minimum(t, 1.0)[:, None]


# What the point panels show besides the samples, as the figure's key and the caption say it:
# the true modes, else the real data, else nothing.
_BESIDE = (
    ("modes of the real data (×)", "the true mode centers (×)"),
    ("real data (grey)", "the real data (grey)"),
    ("no real data drawn", "no real data (the dataset gives none)"),
)


def points_figure(setting: Setting, path: Path, n: int = 2000) -> str | None:
    """Generated 2-D points (one panel per norm) over the true mode centers, all panels on
    one view from the real data; points outside it are drawn on the frame as triangles."""
    seed, picked = pick_runs(setting, lambda r: r.checkpoint is not None)
    points: dict[str, np.ndarray] = {}
    real = centers = None
    for lb, run in picked:
        G, _, spec = load_models(run.checkpoint)
        if tuple(spec.shape) == (2,):
            points[lb] = sample(G, n, seed=0).reshape(n, -1).double().numpy()
            if real is None and centers is None:
                real, centers = _real_points(run, 5000)
    if not points:
        return None
    lo, hi = points_view(points.values(), real if real is not None else centers)
    fig, axes = _grid(len(points), 3.8)
    n_out_total = 0
    for j, (ax, (lb, pts)) in enumerate(zip(axes, points.items())):
        inside = np.all((pts >= lo) & (pts <= hi), axis=1)
        n_out = int((~inside).sum())
        n_out_total += n_out
        if real is not None and centers is None:
            # Under mode markers the real data of a mixture (a few hundredths around each
            # mode) would be hidden: drawn only where there are no modes to mark.
            ax.scatter(real[:, 0], real[:, 1], s=4, color="0.6", alpha=0.5, lw=0)
        if centers is not None:
            # Under the samples: a mode marker must not hide the samples piled on it, and an
            # uncovered mode still shows.
            ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", color="black", lw=1.2)
        ax.scatter(pts[inside, 0], pts[inside, 1], s=3, alpha=0.4, color=_color(j))
        if n_out:
            # Drawn on the frame, hollow, where the line from the view's center to each
            # point leaves the view: far-off points stay visible, and in their direction,
            # without moving the view.
            edge = to_frame(pts[~inside], lo, hi)
            ax.scatter(
                edge[:, 0],
                edge[:, 1],
                marker="^",
                s=30,
                facecolors="none",
                edgecolors=_color(j),
                lw=1.0,
                clip_on=False,
                zorder=3,
            )
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal")
        if n_out:
            mx, my = np.median(pts[~inside], axis=0)
            outside = f"\n{n_out} of {n} outside (△), median ({mx:.3g}, {my:.3g})"
        else:
            outside = ""
        ax.set_title(lb + outside, fontsize=9)
        ax.tick_params(labelsize=7)
    mark, over = _BESIDE[0 if centers is not None else 1 if real is not None else 2]
    marks = f"Generated (dots), {mark}"
    if n_out_total:
        marks += "\n△ on the frame: generated, outside the view"
    _save(fig, path, marks)
    return (
        f"{n} generated points from seeded noise over {over} ({_seed_text(seed)}). "
        "Every panel shows the same view: the real data's extent plus a "
        f"{VIEW_MARGIN:.0%} margin; points outside it are drawn on the frame as △ and "
        "counted in the panel's title."
    )


def grid_tiles(
    img: np.ndarray, n: int, nrow: int, pad: int = 2
) -> tuple[int, int, int, int] | None:
    """``(rows, cols, tile_h, tile_w)`` of a ``make_grid`` image of ``n`` samples,
    ``nrow`` a row, ``pad`` white pixels between tiles; None when ``img`` is not one (the
    density image of a 2-D run)."""
    cols = min(nrow, n)
    rows = math.ceil(n / max(cols, 1))
    h, w = img.shape[:2]
    if cols < 1 or (h - pad) % rows or (w - pad) % cols:
        return None
    th, tw = (h - pad) // rows - pad, (w - pad) // cols - pad
    if th < 1 or tw < 1:
        return None
    ys = [r * (th + pad) + k for r in range(rows + 1) for k in range(pad)]
    xs = [c * (tw + pad) + k for c in range(cols + 1) for k in range(pad)]
    # make_grid pads with white: the pad lines must be all white, or this is no grid.
    if img[ys].min() < 255 or img[:, xs].min() < 255:
        return None
    return rows, cols, th, tw


# An image this white or whiter (share of near-white pixels) that is not a grid of tiles is a
# 2-D run's density plot: thickened and darkened to be readable (_readable).
SPARSE_WHITE = 0.9
# Gamma applied to the darkness of its grey pixels: a lone sample's 10 % grey becomes ~50 %.
DENSITY_GAMMA = 0.3


def _thicken_and_darken(img: np.ndarray, r: int) -> np.ndarray:
    """(H, W, 3) uint8 -> each grey pixel (R = G = B, the density) the darkest grey of its
    (2r+1)² neighbourhood, its darkness raised to ``DENSITY_GAMMA``; coloured pixels (the
    red mode marks) stay as they are, and do not grow."""
    h, w = img.shape[:2]
    grey = (img[..., 0] == img[..., 1]) & (img[..., 1] == img[..., 2])
    src = np.where(grey, img[..., 0], 255).astype(np.uint8)
    pad = np.pad(src, r, mode="edge")
    dark = src.copy()
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            dark = np.minimum(dark, pad[dy : dy + h, dx : dx + w])
    v = 255 * (1.0 - (1.0 - dark.astype(np.float64) / 255) ** DENSITY_GAMMA) + 0.5
    out = img.copy()
    out[grey] = v.astype(np.uint8)[grey][:, None]
    return out


def _readable(img: np.ndarray, run: Run) -> tuple[np.ndarray, str]:
    """The first ``TILES_PER_SIDE``² tiles of a sample grid, enlarged by nearest neighbour
    to at least ``MIN_TILE_PX`` a side, and what was done (for the caption)."""
    grid = run.full_config["grid"]
    n = int(grid["n"])
    geom = grid_tiles(img, n, int(grid["nrow"]))
    if geom is None:
        scale = max(1, math.ceil(256 / max(img.shape[:2])))
        big = img.repeat(scale, 0).repeat(scale, 1)
        if (img.min(axis=2) > 245).mean() < SPARSE_WHITE or has_axes(img):
            return big, "the whole image"  # a picture, or a density image drawn legibly
        # A 2-D run's density image: one sample is one pale pixel, invisible on the page.
        size = "" if scale == 1 else f" enlarged {scale}×,"
        return _thicken_and_darken(big, scale), (
            f"the whole image,{size} its grey levels darkened (γ {DENSITY_GAMMA}) and each "
            "dot thickened so that single samples show"
        )
    rows, cols, th, tw = geom
    r, c = min(rows, TILES_PER_SIDE), min(cols, TILES_PER_SIDE)
    crop = img[: 2 + r * (th + 2), : 2 + c * (tw + 2)]
    scale = max(1, math.ceil(MIN_TILE_PX / max(th, tw)))
    what = f"the first {r * c} of {n} tiles ({th}×{tw} px)"
    if scale > 1:
        what += f", enlarged {scale}× (nearest neighbour)"
    return crop.repeat(scale, 0).repeat(scale, 1), what


def samples_figure(setting: Setting, path: Path) -> str:
    """``samples/final.png`` of each norm, one labelled panel each, tiles large enough to
    read: a few tiles enlarged by nearest neighbour, placed pixel for pixel."""
    seed, picked = pick_runs(setting, lambda r: r.final_samples is not None)
    title = "Final samples (seeds differ between norms)"
    if seed is not None:
        title = f"Final samples, fixed noise of seed {seed}"
    panels, whats = [], set()
    for lb, run in picked:
        with Image.open(run.final_samples) as im:
            img, what = _readable(np.asarray(im.convert("RGB")), run)
        panels.append((lb, img))
        whats.add(what)
    # Pixel-exact layout: at 100 dpi one image pixel is one PNG pixel, so nothing is resampled.
    pw, ph = max(p.shape[1] for _, p in panels), max(p.shape[0] for _, p in panels)
    gap, head, label_h = 12, 30, 22
    cols = max(1, min(len(panels), (PAGE_PX - gap) // (pw + gap)))
    rows = math.ceil(len(panels) / cols)
    width, height = gap + cols * (pw + gap), head + rows * (label_h + ph + gap)
    plt = require_matplotlib()
    fig = plt.figure(figsize=(width / 100, height / 100))
    for k, (lb, img) in enumerate(panels):
        r, c = divmod(k, cols)
        left, top = gap + c * (pw + gap), head + r * (label_h + ph + gap) + label_h
        h, w = img.shape[:2]
        ax = fig.add_axes((left / width, 1 - (top + h) / height, w / width, h / height))
        ax.imshow(img, interpolation="nearest")
        ax.set_title(lb, fontsize=10)
        ax.axis("off")
    fig.text(0.5, 1 - 8 / height, title, ha="center", va="top", fontsize=11)
    _save(fig, path)
    return f"{title}: samples/final.png of each normalization, {'; '.join(sorted(whats))}."
