"""The report's figures (matplotlib, Agg backend, imported lazily).

matplotlib is the optional ``report`` extra: :func:`require_matplotlib` turns its absence
into one actionable message.  Every figure is a small PNG (6 x 4 inches at 100 dpi per panel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gansn.report.aggregate import LIP_UPPER, Setting, lower_bound_series, mean_curve

DPI = 100


class ReportDependencyError(ImportError):
    """An optional dependency of the report is not installed."""


def require_matplotlib() -> Any:
    """Return ``matplotlib.pyplot`` on the Agg backend, or raise with the install command."""
    try:
        import matplotlib
    except ImportError as err:
        raise ReportDependencyError(
            "gansn-report draws its figures with matplotlib, which is not installed; "
            "run `pip install 'gansn[report]'` (or pass --no-plots for tables only)"
        ) from err
    # Agg: reports are built on headless machines and must never try to open a window.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _color(i: int) -> Any:
    plt = require_matplotlib()
    return plt.get_cmap("tab10")(i % 10)


def _save(fig: Any, path: Path) -> Path:
    plt = require_matplotlib()
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_metric_curves(
    setting: Setting, tag: str, path: Path, *, ylabel: str, log_y: bool = False
) -> Path | None:
    """``tag`` vs generator step, one line per norm (mean over seeds, min-max shaded)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for i, row in enumerate(setting.rows):
        series = [r.series.get(tag, []) for r in row.used]
        steps, mean, lo, hi = mean_curve([s for s in series if s])
        if not steps:
            continue
        n = sum(1 for s in series if s)
        ax.plot(
            steps,
            mean,
            color=_color(i),
            marker="o" if len(steps) < 12 else None,
            ms=3,
            label=f"{row.label} (n={n})",
        )
        if n > 1:
            ax.fill_between(steps, lo, hi, color=_color(i), alpha=0.2, lw=0)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} vs step — mean over seeds, min–max shaded", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _positive(steps: Sequence[int], vals: Sequence[float]) -> tuple[list[int], list[float]]:
    # A log axis cannot show 0 or negative bounds; drop those points rather than the curve.
    keep = [(s, v) for s, v in zip(steps, vals) if v > 0 and math.isfinite(v)]
    return [s for s, _ in keep], [v for _, v in keep]


def plot_lipschitz(setting: Setting, path: Path) -> Path | None:
    """The Lipschitz bracket per norm: operator-norm upper bound (solid) and the max of the
    empirical lower bounds (dashed), mean over seeds, log y."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for i, row in enumerate(setting.rows):
        up = mean_curve([r.series.get(LIP_UPPER, []) for r in row.used])
        lo = mean_curve([lower_bound_series(r) for r in row.used])
        for (steps, mean, _, _), style, what in ((up, "-", "upper"), (lo, "--", "lower")):
            s, m = _positive(steps, mean)
            if s:
                ax.plot(s, m, style, color=_color(i), label=f"{row.label} {what}")
                drawn = True
        s_up, m_up = _positive(up[0], up[1])
        lo_map = dict(zip(*_positive(lo[0], lo[1])))
        shared = [(s, m, lo_map[s]) for s, m in zip(s_up, m_up) if s in lo_map]
        if shared:
            ax.fill_between(
                [x[0] for x in shared],
                [x[2] for x in shared],
                [x[1] for x in shared],
                color=_color(i),
                alpha=0.1,
                lw=0,
            )
    if not drawn:
        plt.close(fig)
        return None
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("generator step")
    ax.set_ylabel("Lipschitz constant of D")
    ax.set_title(
        "Lipschitz bracket: operator-norm upper (solid), empirical lower (dashed)", fontsize=9
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_spectra(
    spectra: dict[str, list[tuple[str, np.ndarray]]],
    path: Path,
    colors: dict[str, int] | None = None,
) -> Path | None:
    """SNGAN figure 2: per layer, sorted sigma_i / sigma_max, one line per norm.

    ``spectra`` maps a norm label to its layers in forward order ``[(name, sigmas), ...]``.
    Layers are matched by position, not name: feature norms shift the indices inside
    ``nn.Sequential``, so the same layer has different names under different norms.
    """
    plt = require_matplotlib()
    n_layers = max((len(v) for v in spectra.values()), default=0)
    if n_layers == 0:
        return None
    ncols = min(4, n_layers)
    nrows = math.ceil(n_layers / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.6 * nrows), squeeze=False)
    for li in range(n_layers):
        ax = axes[li // ncols][li % ncols]
        for j, (label, layers) in enumerate(spectra.items()):
            if li >= len(layers):
                continue
            _, sig = layers[li]
            sig = np.sort(np.asarray(sig, dtype=float))[::-1]
            if sig.size == 0 or sig[0] <= 0:
                continue
            c = _color((colors or {}).get(label, j))
            # Markers for short spectra: the last layer (to one logit) has a single sigma.
            ax.plot(
                np.arange(1, sig.size + 1),
                sig / sig[0],
                color=c,
                label=label,
                lw=1.2,
                marker="o" if sig.size <= 16 else None,
                ms=3,
            )
        names = [layers[li][0] for layers in spectra.values() if li < len(layers)]
        name = names[0] if len(set(names)) == 1 else ""
        ax.set_title(f"layer {li + 1}" + (f": {name[-24:]}" if name else ""), fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("index i", fontsize=8)
        ax.set_ylabel("σ_i / σ_max", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(n_layers, nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Singular values of D's layers at the end of training", fontsize=10)
    return _save(fig, path)


def plot_points(
    points: dict[str, np.ndarray],
    centers: np.ndarray | None,
    path: Path,
    colors: dict[str, int] | None = None,
) -> Path | None:
    """Generated 2-D points (one panel per norm) over the true mode centers."""
    plt = require_matplotlib()
    if not points:
        return None
    n = len(points)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.2), squeeze=False)
    # Clip the view to the bulk so one far-flung sample does not shrink every panel, but
    # always show every true mode: a collapsed G must not hide the modes it missed.
    lo, hi = np.percentile(np.concatenate(list(points.values())), [0.5, 99.5], axis=0)
    if centers is not None:
        lo, hi = np.minimum(lo, centers.min(axis=0)), np.maximum(hi, centers.max(axis=0))
    pad = 0.1 * (hi - lo) + 0.5
    for j, (label, pts) in enumerate(points.items()):
        ax = axes[0][j]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color=_color((colors or {}).get(label, j)))
        if centers is not None:
            ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", color="black", lw=1.5)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("Generated points (dots) over the true modes (×)", fontsize=10)
    return _save(fig, path)


def plot_montage(images: list[tuple[str, Path]], path: Path, *, title: str) -> Path | None:
    """Side-by-side sample grids, one labelled panel per norm."""
    plt = require_matplotlib()
    from PIL import Image

    if not images:
        return None
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.4), squeeze=False)
    for j, (label, img_path) in enumerate(images):
        ax = axes[0][j]
        with Image.open(img_path) as im:
            ax.imshow(np.asarray(im.convert("RGB")), interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
