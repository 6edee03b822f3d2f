"""The report's figures: one function per figure, from a setting to a PNG and its caption.

Each ``*_figure(setting, path)`` draws one figure and returns its caption, or None when the
setting has nothing to draw it from.  :func:`require_matplotlib` turns a missing matplotlib
into one actionable message.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gansn.checkpoint import load_models
from gansn.data import build_dataset
from gansn.lipschitz import plot_singular_value_spectra, singular_value_spectra
from gansn.report.aggregate import LIP_UPPER, Setting, label, run_series
from gansn.report.collect import Run
from gansn.sampling import sample


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
    return require_matplotlib().get_cmap("tab10")(i % 10)


def _save(fig: Any, path: Path, suptitle: str | None = None) -> None:
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    require_matplotlib().close(fig)


def _save_lines(
    fig: Any, path: Path, ylabel: str, title: str, *, log_y: bool, **legend: Any
) -> bool:
    """Label a value-vs-step plot and save it; False, writing nothing, if no line was drawn."""
    ax = fig.axes[0]
    if not ax.lines:
        require_matplotlib().close(fig)
        return False
    if log_y:
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(**legend)
    _save(fig, path)
    return True


def _panels(n: int, height: float) -> tuple[Any, Any]:
    """A figure of ``n`` panels side by side, and their axes."""
    fig, axes = require_matplotlib().subplots(1, n, figsize=(3 * n, height), squeeze=False)
    return fig, axes[0]


def _by_step(series: Iterable[list[tuple[int, float]]]) -> dict[int, list[float]]:
    """The runs' values at every step any of them logged, in step order (a run that did not
    log a step is left out there)."""
    out: dict[int, list[float]] = {}
    for step, v in (sv for s in series for sv in s):
        out.setdefault(step, []).append(v)
    return dict(sorted(out.items()))


def pick_runs(setting: Setting, ok: Callable[[Run], bool]) -> tuple[Any, list[tuple[str, Run]]]:
    """One run per norm for the per-run figures: the same seed everywhere when possible
    (so every norm starts from the same fixed noise), else each norm's first usable run."""
    usable = {row.label: [r for r in row.used if ok(r)] for row in setting.rows}
    usable = {k: v for k, v in usable.items() if v}
    common = set.intersection(*({r.seed for r in v} for v in usable.values()))
    if not common:
        return None, [(k, v[0]) for k, v in usable.items()]
    seed = min(common)
    return seed, [(k, next(r for r in v if r.seed == seed)) for k, v in usable.items()]


def _seed_text(seed: Any) -> str:
    return f"seed {seed}" if seed is not None else "first run of each norm"


def curves_figure(setting: Setting, path: Path, tag: str) -> str | None:
    """``tag`` vs generator step, one line per norm (mean over seeds, min-max shaded)."""
    fig, ax = require_matplotlib().subplots(figsize=(6, 4))
    for i, row in enumerate(setting.rows):
        series = [s for s in (r.series.get(tag, []) for r in row.used) if s]
        values = _by_step(series)
        if not values:
            continue
        steps, mean = list(values), [statistics.fmean(v) for v in values.values()]
        marker = "o" if len(steps) < 12 else None
        label_n = f"{row.label} (n={len(series)})"
        ax.plot(steps, mean, color=_color(i), marker=marker, ms=3, label=label_n)
        if len(series) > 1:
            lo, hi = [min(v) for v in values.values()], [max(v) for v in values.values()]
            ax.fill_between(steps, lo, hi, color=_color(i), alpha=0.2, lw=0)
    title = f"{label(tag)} vs step — mean over seeds, min–max shaded"
    if not _save_lines(fig, path, label(tag), title, log_y=False, fontsize=8):
        return None
    how = "mean over seeds; shaded: min–max over seeds"
    return f"{label(tag)} vs generator step per normalization ({how})."


def lipschitz_figure(setting: Setting, path: Path) -> str | None:
    """The Lipschitz bracket per norm: operator-norm upper bound (solid) and the max of the
    empirical lower bounds (dashed), mean over seeds, log y."""
    fig, ax = require_matplotlib().subplots(figsize=(6, 4))
    for i, row in enumerate(setting.rows):
        bounds = {}
        for tag, style, what in ((LIP_UPPER, "-", "upper"), ("lipschitz/lower", "--", "lower")):
            values = _by_step(run_series(r, tag) for r in row.used)
            means = {s: statistics.fmean(v) for s, v in values.items()}
            # A log axis cannot show 0 or negative bounds: drop those points, not the curve.
            bounds[what] = {s: m for s, m in means.items() if m > 0}
            if bounds[what]:
                xs, ys = list(bounds[what]), list(bounds[what].values())
                ax.plot(xs, ys, style, color=_color(i), label=f"{row.label} {what}")
        up, lo = bounds["upper"], bounds["lower"]
        shared = [s for s in up if s in lo]
        if shared:
            lows, ups = [lo[s] for s in shared], [up[s] for s in shared]
            ax.fill_between(shared, lows, ups, color=_color(i), alpha=0.1, lw=0)
    title = "Lipschitz bracket: operator-norm upper (solid), empirical lower (dashed)"
    if not _save_lines(fig, path, "Lipschitz constant of D", title, log_y=True, fontsize=7, ncol=2):
        return None
    return (
        "Lipschitz constant of D: product of layer operator norms (upper bound, solid) and the "
        "largest empirical lower bound — max input-gradient norm or finite-difference ratio "
        "(dashed); mean over seeds, log scale."
    )


def spectra_figure(setting: Setting, path: Path) -> str:
    """SNGAN figure 2: per layer of D, sorted sigma_i / sigma_max, one line per norm."""
    seed, picked = pick_runs(setting, lambda r: r.checkpoint is not None)
    spectra = {
        lb: list(singular_value_spectra(load_models(r.checkpoint)[1]).items()) for lb, r in picked
    }
    # Layers are matched by position, not name: a feature norm after a layer shifts the
    # indices inside nn.Sequential, so the same layer has different names under different norms.
    by_position: dict[str, dict[str, np.ndarray]] = {lb: {} for lb in spectra}
    for i in range(max(map(len, spectra.values()))):
        names = {layers[i][0] for layers in spectra.values() if i < len(layers)}
        title = f"layer {i + 1}" + (f": {names.pop()[-24:]}" if len(names) == 1 else "")
        for lb, layers in spectra.items():
            if i < len(layers):
                by_position[lb][title] = layers[i][1]
    title = "Singular values of D's layers at the end of training"
    plot_singular_value_spectra(by_position, path, title=title)
    return (
        "Singular values σ_i/σ_max of each layer's effective weight of D at the end of "
        f"training ({_seed_text(seed)}); layers matched by position (cf. SNGAN, figure 2)."
    )


def points_figure(setting: Setting, path: Path, n: int = 2000) -> str | None:
    """Generated 2-D points (one panel per norm) over the true mode centers."""
    seed, picked = pick_runs(setting, lambda r: r.checkpoint is not None)
    points, centers = {}, None
    for lb, run in picked:
        G, _, spec = load_models(run.checkpoint)
        if tuple(spec.shape) == (2,):
            points[lb] = sample(G, n, seed=0).reshape(n, -1).numpy()
            if centers is None:
                centers = getattr(build_dataset(run.config["dataset"]), "centers", None)
    if not points:
        return None
    fig, axes = _panels(len(points), 3.2)
    # Clip the view to the bulk so one far-flung sample does not shrink every panel, but
    # always show every true mode: a collapsed G must not hide the modes it missed.
    lo, hi = np.percentile(np.concatenate(list(points.values())), [0.5, 99.5], axis=0)
    if centers is not None:
        centers = np.asarray(centers, dtype=float)
        lo, hi = np.minimum(lo, centers.min(axis=0)), np.maximum(hi, centers.max(axis=0))
    pad = 0.1 * (hi - lo) + 0.5
    for j, (ax, (lb, pts)) in enumerate(zip(axes, points.items())):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color=_color(j))
        if centers is not None:
            ax.scatter(centers[:, 0], centers[:, 1], s=40, marker="x", color="black", lw=1.5)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal")
        ax.set_title(lb, fontsize=9)
        ax.tick_params(labelsize=7)
    _save(fig, path, "Generated points (dots) over the true modes (×)")
    return (
        f"{n} generated points from seeded noise over the true mode centers ({_seed_text(seed)})."
    )


def samples_figure(setting: Setting, path: Path) -> str:
    """Side-by-side ``samples/final.png`` grids, one labelled panel per norm."""
    seed, picked = pick_runs(setting, lambda r: r.final_samples is not None)
    title = "Final samples (seeds differ between norms)"
    if seed is not None:
        title = f"Final samples, fixed noise of seed {seed}"
    fig, axes = _panels(len(picked), 3.4)
    for ax, (lb, run) in zip(axes, picked):
        with Image.open(run.final_samples) as im:
            ax.imshow(np.asarray(im.convert("RGB")), interpolation="nearest")
        ax.set_title(lb, fontsize=9)
        ax.axis("off")
    _save(fig, path, title)
    return f"{title}: samples/final.png of each normalization."
