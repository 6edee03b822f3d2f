"""The report's figures: one function per figure, from a setting to a PNG and its caption.

Each ``*_figure(setting, path)`` draws one figure and returns its caption, or None when the
setting has nothing to draw it from; it raises :class:`NoInformation` when there is data but
a figure of it would tell the reader nothing (every value the same).  :func:`require_matplotlib`
turns a missing matplotlib into one actionable message.

What a careful reader is owed, and every figure keeps: legends outside the data, axes that
name the feature space a metric was measured in, no empty or uninformative panels, a few
evaluations drawn as points rather than as a trend, and views that one far-off run cannot
squash.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gansn.report.aggregate import LIP_UPPER, Setting, axis_label, label, run_series
from gansn.report.collect import Run

# A norm with fewer evaluations than this is drawn as points: two joined points read as a trend.
FEW_POINTS = 5
# A curve whose positive values span at least this ratio is drawn on a log axis: on a linear
# one, norms 100x apart sit flat at 0 under the worst one although the table ranks them.
LOG_SPAN = 100.0


class ReportDependencyError(ImportError):
    """An optional dependency of the report is not installed."""


class NoInformation(Exception):
    """A figure would carry no information; the message says why (the report lists it)."""


def require_matplotlib() -> Any:
    """Return ``matplotlib.pyplot`` on the Agg backend, or raise with the install command."""
    try:
        import matplotlib
    except ImportError as err:
        raise ReportDependencyError(
            "gansn-report draws its figures with matplotlib, which is not installed; "
            "run `pip install matplotlib` (or pass --no-plots for tables only)"
        ) from err
    # Agg: reports are built on headless machines and must never try to open a window.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _color(i: int) -> Any:
    return require_matplotlib().get_cmap("tab10")(i % 10)


def _save(fig: Any, path: Path, suptitle: str | None = None) -> None:
    """Write ``fig`` at 100 dpi and close it (figures use constrained layout or exact
    pixel placement, so no tight_layout here)."""
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.savefig(path, dpi=100)
    require_matplotlib().close(fig)


def spans_decades(values: Iterable[float]) -> bool:
    """Whether ``values`` are all positive and span at least ``LOG_SPAN`` (max / min): then a
    log axis shows each of them, where a linear one flattens the small ones to 0."""
    vals = [v for v in values if math.isfinite(v)]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= LOG_SPAN


def _by_step(series: Iterable[list[tuple[int, float]]]) -> dict[int, list[float]]:
    """The runs' values at every step any of them logged, in step order (a run that did not
    log a step is left out there, and so is a NaN/Inf: the tables count it as diverged)."""
    out: dict[int, list[float]] = {}
    for step, v in (sv for s in series for sv in s):
        if math.isfinite(v):
            out.setdefault(step, []).append(v)
    return dict(sorted(out.items()))


def _dodge(steps: list[int], k: int, n: int, all_steps: Iterable[int]) -> list[float]:
    """``steps`` nudged sideways for the ``k``-th of ``n`` norms drawn as points, so equal
    values at one step do not hide each other: within ±10 % of the smallest step gap."""
    distinct = sorted(set(all_steps))
    gap = min((b - a for a, b in itertools.pairwise(distinct)), default=1)
    shift = 0.0 if n < 2 else (k / (n - 1) - 0.5) * 0.2 * gap
    return [s + shift for s in steps]


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
    """``tag`` vs generator step, one line per norm (mean over seeds, min-max shaded); a
    norm with fewer than ``FEW_POINTS`` evaluations is drawn as points with min-max bars."""
    used = [r for row in setting.rows for r in row.used]
    drawn = []
    for i, row in enumerate(setting.rows):
        series = [s for s in (r.series.get(tag, []) for r in row.used) if s]
        if values := _by_step(series):
            drawn.append((i, row.label, len(series), values))
    if not drawn:
        return None
    distinct = {v for *_, values in drawn for vs in values.values() for v in vs}
    if len(distinct) == 1:
        # A flat line per norm at one shared value: the table already says all there is.
        raise NoInformation(f"every run logged {distinct.pop():g} at every step")

    fig = require_matplotlib().figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.add_subplot()
    few = [i for i, *_, values in drawn if len(values) < FEW_POINTS]
    all_steps = [s for i, *_, values in drawn if i in few for s in values]
    for i, name, n, values in drawn:
        steps, mean = list(values), [statistics.fmean(v) for v in values.values()]
        lo, hi = [min(v) for v in values.values()], [max(v) for v in values.values()]
        text = f"{name} (n={n})"
        if len(steps) < FEW_POINTS:
            xs = _dodge(steps, few.index(i), len(few), all_steps)
            bars = [[m - a for m, a in zip(mean, lo)], [b - m for m, b in zip(mean, hi)]]
            ax.errorbar(
                xs,
                mean,
                yerr=bars if n > 1 else None,
                fmt="o-",
                ms=6,
                lw=0.7,
                capsize=3,
                color=_color(i),
                label=text,
            )
        else:
            ax.plot(steps, mean, color=_color(i), lw=1.5, label=text)
            if n > 1:
                ax.fill_between(steps, lo, hi, color=_color(i), alpha=0.2, lw=0)
    ylabel = axis_label(tag, used)
    log_y = spans_decades(distinct)
    # Name only the spread that is drawn: one seed per norm has no min-max to show.
    spread = any(n > 1 for _, _, n, _ in drawn)
    kinds = [k for k, on in (("shaded", len(few) < len(drawn)), ("bars", few)) if on]
    how = "mean over seeds" if spread else "one run per norm"
    title = f"{label(tag)} vs step — {how}" + (f", min–max {' / '.join(kinds)}" if spread else "")
    title += ", log scale" if log_y else ""
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    # Right of the axes: inside, a legend hides whichever curve happens to run under it.
    fig.legend(handles=ax.get_legend_handles_labels()[0], loc="outside right upper", fontsize=8)
    _save(fig, path)
    if log_y:
        lo, hi = min(distinct), max(distinct)
        how += f"; log scale: the values span {lo:.3g} to {hi:.3g}"
    if spread and "shaded" in kinds:
        how += "; shaded: min–max over seeds"
    if few:
        how += (
            f"; a norm with fewer than {FEW_POINTS} evaluations is drawn as points"
            + (" with min–max bars" if spread else "")
            + ", nudged sideways so equal values stay visible"
        )
    return f"{ylabel} vs generator step per normalization ({how})."


def _mean_bound(row: Any, tag: str) -> dict[int, float]:
    """One norm's bound ``tag`` per step, mean over its seeds; only positive means (a log
    axis cannot show 0 or a negative bound: those points are dropped, not the curve)."""
    values = _by_step(run_series(r, tag) for r in row.used)
    means = {s: statistics.fmean(v) for s, v in values.items()}
    return {s: m for s, m in means.items() if m > 0}


def lipschitz_figure(setting: Setting, path: Path) -> str | None:
    """The Lipschitz bracket, one panel per norm (small multiples): operator-norm upper
    bound (solid), max of the empirical lower bounds (dashed), the bracket between them
    shaded; mean over seeds, log y, each panel on its own scale.

    On one shared axes the brackets of the feature norms (batch, layer, group: upper bounds
    up to 10^15, since the operator-norm product ignores the normalization between layers)
    cover the whole plot and hide how spectral, weight and none differ.
    """
    require_matplotlib()  # first: a missing matplotlib gets its install message
    from matplotlib.lines import Line2D

    panels = []
    for i, row in enumerate(setting.rows):
        up, lo = _mean_bound(row, LIP_UPPER), _mean_bound(row, "lipschitz/lower")
        if up or lo:
            panels.append((i, row.label, up, lo))
    if not panels:
        return None
    fig, axes = _grid(len(panels), 2.6, width=3.0)
    few = False
    for ax, (i, name, up, lo) in zip(axes, panels):
        for bound, style in ((up, "-"), (lo, "--")):
            if not bound:
                continue
            xs, ys = list(bound), list(bound.values())
            points = len(xs) < FEW_POINTS  # points, so two of them do not read as a trend
            few |= points
            ax.plot(
                xs,
                ys,
                style,
                color=_color(i),
                marker=("o" if style == "-" else "s") if points else None,
                ms=4,
                lw=0.8 if points else 1.5,
            )
        shared = [s for s in up if s in lo]
        if shared:
            ax.fill_between(
                shared,
                [lo[s] for s in shared],
                [up[s] for s in shared],
                color=_color(i),
                alpha=0.12,
                lw=0,
            )
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ends = []
        if lo:
            ends.append(f"{lo[max(lo)]:.3g} ≤ L")
        if up:
            ends.append(f"{'L ' if not lo else ''}≤ {up[max(up)]:.3g}")
        ax.set_title(f"{name}: {' '.join(ends)}", fontsize=9)
        ax.grid(alpha=0.3)  # major only: minor log gridlines crowd a small panel
        ax.tick_params(labelsize=7)
    fig.supxlabel("generator step", fontsize=9)
    fig.supylabel("Lipschitz constant of D (log)", fontsize=9)
    handles = [
        Line2D([], [], color="black", ls="-", label="upper: product of operator norms"),
        Line2D([], [], color="black", ls="--", label="lower: max input gradient / FD ratio"),
        Line2D([], [], color="grey", ls=":", label="L = 1"),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncol=3, fontsize=8, frameon=False)
    _save(fig, path)
    return (
        "Lipschitz constant of D, one panel per normalization, each on its own log scale: "
        "product of layer operator norms (upper bound, solid) and the largest empirical lower "
        "bound — max input-gradient norm or finite-difference ratio (dashed) — with the bracket "
        "between them shaded; mean over seeds; panel titles give the last values"
        + (f"; fewer than {FEW_POINTS} measurements are drawn as points" if few else "")
        + "."
    )


def _grid(n: int, height: float, width: float = 3.2, max_cols: int = 4) -> tuple[Any, list[Any]]:
    """``n`` panels, at most ``max_cols`` a row, and only those: no empty axes at the end."""
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    plt = require_matplotlib()
    # at least 4.5 in wide: one panel must still have room for the figure's title
    fig = plt.figure(figsize=(max(width * cols, 4.5), height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]
