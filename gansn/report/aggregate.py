"""Group runs into settings and normalization rows; mean ± std over seeds; best per column.

A sweep varies some config keys.  ``seed`` is averaged over; the normalization keys
(``d_norm.*``, and ``g_norm.*`` when they vary) make the rows of a table; every other
varying key (dataset, optimizer setting, lr, betas, n_dis, loss, model, steps, ...) makes
a separate table ("setting"), because averaging over them would mix different experiments.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gansn.report.collect import Run

Direction = Literal["min", "max"]

# Keyed by the last component of a tag ("metrics/fid" -> "fid", "modes/class_kl" -> "class_kl").
DIRECTIONS: dict[str, Direction] = {
    "fid": "min",
    "kid": "min",
    "kl": "min",
    "class_kl": "min",
    "ndb": "min",
    "precision": "max",
    "recall": "max",
    "density": "max",
    "coverage": "max",
    "covered": "max",
    "high_quality": "max",
    "class_coverage": "max",
}

# Tags shown in the tables (final and best value each), in column order, with labels.
TABLE_METRICS: list[tuple[str, str]] = [
    ("metrics/fid", "FID"),
    ("metrics/kid", "KID"),
    ("metrics/precision", "Precision"),
    ("metrics/recall", "Recall"),
    ("metrics/density", "Density"),
    ("metrics/coverage", "Coverage"),
    ("modes/covered", "Modes"),
    ("modes/high_quality", "HQ samples"),
    ("modes/kl", "Mode KL"),
    ("modes/class_coverage", "Class cov."),
    ("modes/class_kl", "Class KL"),
]

LIP_UPPER = "lipschitz/upper_operator"
# Every one of these is a valid lower bound on D's Lipschitz constant, so their max is too.
LIP_LOWER = (
    "lipschitz/grad_real_max",
    "lipschitz/grad_fake_max",
    "lipschitz/grad_interp_max",
    "lipschitz/fd_ratio",
)

ROW_PREFIXES = ("d_norm", "g_norm")
SEED_KEY = "seed"
# Keys that differ per job without defining an experiment (output locations, bookkeeping).
_NOISE = re.compile(
    r"(^|\.)(hydra|run_dir|out_dir|output_dir|outdir|work_dir|log_dir|checkpoint_dir|"
    r"[a-z_]*_(dir|path|root|file)|dir|path|root|name_suffix|job_num|job_id)(\.|$)"
)


def direction(tag: str) -> Direction | None:
    """``"min"`` if lower is better for ``tag``, ``"max"`` if higher is, else None."""
    return DIRECTIONS.get(tag.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Stat:
    """Mean ± sample std (ddof=1) of one column over the seeds of one row."""

    mean: float
    std: float | None
    n: int
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


def aggregate(values: Iterable[float | None]) -> Stat | None:
    """Mean and std (ddof=1; None for a single value) of the finite values; None if none.

    Non-finite values (a diverged run's NaN) are left out here; the row's ``n`` shows it.
    """
    vals = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    if not vals:
        return None
    std = statistics.stdev(vals) if len(vals) > 1 else None
    return Stat(mean=statistics.fmean(vals), std=std, n=len(vals), values=vals)


def best_keys(
    stats: Mapping[str, Stat | None], how: Direction | None, *, rel_tol: float = 1e-9
) -> set[str]:
    """Keys whose mean is best under ``how``; ties all win. Empty with < 2 candidates.

    Bolding the only row that has a number would claim a comparison that was not made.
    """
    have = {k: s.mean for k, s in stats.items() if s is not None}
    if how is None or len(have) < 2:
        return set()
    target = min(have.values()) if how == "min" else max(have.values())
    return {k for k, m in have.items() if math.isclose(m, target, rel_tol=rel_tol, abs_tol=1e-12)}


@dataclass(frozen=True)
class Column:
    """One table column: ``tag`` reduced per run by ``kind``."""

    id: str
    label: str
    tag: str
    kind: Literal["final", "best", "lip_upper", "lip_lower"]
    direction: Direction | None


def table_columns() -> list[Column]:
    cols: list[Column] = []
    for tag, label in TABLE_METRICS:
        d = direction(tag)
        cols.append(Column(f"{tag}:final", f"{label} (final)", tag, "final", d))
        cols.append(Column(f"{tag}:best", f"{label} (best)", tag, "best", d))
    # No direction: a smaller Lipschitz constant is not "better" by itself.
    cols.append(Column("lipschitz:upper", "Lip. upper (end)", LIP_UPPER, "lip_upper", None))
    cols.append(Column("lipschitz:lower", "Lip. lower (end)", "lipschitz/lower", "lip_lower", None))
    return cols


def lower_bound_series(run: Run) -> list[tuple[int, float]]:
    """Per step, the max over the empirical lower bounds logged at that step."""
    per_step: dict[int, float] = {}
    for tag in LIP_LOWER:
        for step, v in run.series.get(tag, []):
            if math.isfinite(v):
                per_step[step] = max(per_step.get(step, -math.inf), v)
    return sorted(per_step.items())


def run_series(run: Run, tag: str) -> list[tuple[int, float]]:
    """A tag's series; ``lipschitz/lower`` is the derived max-of-lower-bounds series."""
    return lower_bound_series(run) if tag == "lipschitz/lower" else run.series.get(tag, [])


def run_value(run: Run, col: Column) -> float | None:
    """Reduce one run to one number for ``col``: last value, or best over steps."""
    series = run_series(run, col.tag)
    if not series:
        return None
    if col.kind == "best":
        vals = [v for _, v in series if math.isfinite(v)]
        if not vals:
            return None
        return min(vals) if col.direction == "min" else max(vals)
    return series[-1][1]


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def varying_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys (dotted) whose value differs between runs, in first-seen order.

    Runs with no config at all (crashed before Hydra wrote one) are left out: every key
    would look like it varies.  Output locations and Hydra bookkeeping are ignored.
    """
    configs = [r.flat for r in runs if r.flat]
    if len(configs) < 2:
        return []
    keys: list[str] = []
    for c in configs:
        keys.extend(k for k in c if k not in keys)
    # yaml dumps keys sorted, so ``d_norm.n_power_iterations`` would precede ``d_norm.name``.
    keys.sort(key=lambda k: (not k.endswith(".name")) if "." in k else False)
    out = []
    for k in keys:
        if _NOISE.search(k):
            continue
        if len({_canon(c.get(k)) for c in configs}) > 1:
            out.append(k)
    return out


def short_key(key: str) -> str:
    """``optim.g.lr`` stays; ``model.name`` -> ``model``; ``d_norm.name`` -> ``d_norm``."""
    return key[: -len(".name")] if key.endswith(".name") else key


def format_value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return str(v)


@dataclass
class Row:
    """One normalization (row) within a setting: its runs and per-column stats."""

    label: str
    values: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, Stat | None] = field(default_factory=dict)

    @property
    def used(self) -> list[Run]:
        return [r for r in self.runs if r.contributes]

    @property
    def excluded(self) -> list[Run]:
        return [r for r in self.runs if not r.contributes]

    @property
    def seeds(self) -> list[Any]:
        return [r.seed for r in self.used]


@dataclass
class Setting:
    """Runs sharing every varying key except the normalization and the seed."""

    index: int
    values: dict[str, Any]
    label_keys: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    best: dict[str, set[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"s{self.index}"

    @property
    def label(self) -> str:
        keys = [k for k in self.label_keys if k in self.values] or list(self.values)
        if not keys:
            return "all runs"
        return ", ".join(f"{short_key(k)}={format_value(self.values[k])}" for k in keys)

    @property
    def runs(self) -> list[Run]:
        return [r for row in self.rows for r in row.runs]

    @property
    def full_label(self) -> str:
        """Every varying key's value, including those the short label leaves out."""
        return ", ".join(f"{short_key(k)}={format_value(v)}" for k, v in self.values.items())


@dataclass
class Study:
    """All runs of a sweep, grouped."""

    runs: list[Run]
    varying: list[str]
    row_keys: list[str]
    setting_keys: list[str]
    settings: list[Setting]
    # The varying keys worth showing: no ``group.x`` that only follows ``group.name``.
    display_keys: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> list[Run]:
        return [r for r in self.runs if not r.contributes]


def _determined(runs: Sequence[Run], key: str, by: str) -> bool:
    """Whether ``key``'s value is a function of ``by``'s value across the runs."""
    seen: dict[str, set[str]] = {}
    for r in runs:
        if r.flat:
            seen.setdefault(_canon(r.flat.get(by)), set()).add(_canon(r.flat.get(key)))
    return all(len(v) == 1 for v in seen.values())


def informative_keys(
    runs: Sequence[Run], keys: Sequence[str], anchors: Sequence[str] = ()
) -> list[str]:
    """Drop ``group.x`` keys that only vary because ``group.name`` (or an anchor) does.

    Spectral norm has ``n_power_iterations`` and batch norm has ``momentum``; across a norm
    sweep those keys "vary" but say nothing the name does not.  They are kept when they vary
    among runs with the same name (a sweep over ``d_norm.n_power_iterations``).  With
    ``anchors=("setting",)`` the lr/betas/n_dis that an optimizer-setting label fixes are
    dropped the same way, so a table is titled ``setting=A``, not by six numbers.
    """
    out = []
    for k in keys:
        cands = [k.split(".", 1)[0] + ".name", *anchors]
        if any(a != k and a in keys and _determined(runs, k, a) for a in cands):
            continue
        out.append(k)
    return out


def row_label(values: Mapping[str, Any]) -> str:
    """``spectral``; ``batch / spectral`` when g_norm varies too (G first, as in G/D)."""
    d = {k: v for k, v in values.items() if k.startswith("d_norm")}
    g = {k: v for k, v in values.items() if k.startswith("g_norm")}

    def one(part: dict[str, Any], prefix: str) -> str:
        name = part.get(f"{prefix}.name")
        name = "?" if name is None and f"{prefix}.name" in part else name
        extra = [
            f"{k[len(prefix) + 1 :]}={format_value(v)}"
            for k, v in part.items()
            if k != f"{prefix}.name"
        ]
        head = str(name) if name is not None else ""
        if extra:
            head = f"{head} ({', '.join(extra)})" if head else ", ".join(extra)
        return head

    parts = [one(g, "g_norm")] if g else []
    parts.append(one(d, "d_norm") if d else "")
    label = " / ".join(p for p in parts if p)
    return label or "runs"


def build_study(runs: Sequence[Run]) -> Study:
    """Group runs into settings (tables) and rows (normalizations) and aggregate."""
    runs = list(runs)
    varying = varying_keys(runs)
    row_keys = [k for k in varying if k.split(".", 1)[0] in ROW_PREFIXES]
    if not any(k.startswith("d_norm") for k in row_keys) and any(
        "d_norm.name" in r.flat for r in runs
    ):
        # A sweep over something else with one norm still names its rows by that norm.
        row_keys = ["d_norm.name", *row_keys]
    setting_keys = [k for k in varying if k not in row_keys and k != SEED_KEY]
    cols = table_columns()
    row_label_keys = informative_keys(runs, row_keys)
    setting_label_keys = informative_keys(runs, setting_keys, anchors=("setting",))

    settings: dict[str, Setting] = {}
    for run in runs:
        svals = {k: run.flat.get(k) for k in setting_keys}
        skey = _canon(svals)
        if skey not in settings:
            settings[skey] = Setting(
                index=len(settings) + 1, values=svals, label_keys=setting_label_keys
            )
        setting = settings[skey]
        rvals = {k: run.flat.get(k) for k in row_keys}
        row = next((r for r in setting.rows if _canon(r.values) == _canon(rvals)), None)
        if row is None:
            row = Row(label=row_label({k: rvals[k] for k in row_label_keys}), values=rvals)
            setting.rows.append(row)
        row.runs.append(run)

    for setting in settings.values():
        for row in setting.rows:
            row.stats = {c.id: aggregate(run_value(r, c) for r in row.used) for c in cols}
        setting.columns = [c for c in cols if any(row.stats[c.id] for row in setting.rows)]
        setting.best = {
            c.id: best_keys({row.label: row.stats[c.id] for row in setting.rows}, c.direction)
            for c in setting.columns
        }
    return Study(
        runs=runs,
        varying=varying,
        row_keys=row_keys,
        setting_keys=setting_keys,
        settings=list(settings.values()),
        display_keys=informative_keys(runs, varying),
    )


def format_stat(s: Stat | None) -> str:
    """``12.34 ± 0.56`` (4 significant digits for the mean, 2 for the std); ``—`` if none."""
    if s is None:
        return "—"
    if s.std is None:
        return f"{s.mean:.4g}"
    return f"{s.mean:.4g} ± {s.std:.2g}"


def mean_curve(
    series_list: Sequence[Sequence[tuple[int, float]]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Mean, min and max over runs at every step any run logged (runs missing a step skip it).

    Returns ``(steps, mean, lo, hi)``; non-finite values are ignored.
    """
    by_step: dict[int, list[float]] = {}
    for series in series_list:
        for step, v in series:
            if math.isfinite(v):
                by_step.setdefault(step, []).append(v)
    steps = sorted(by_step)
    return (
        steps,
        [statistics.fmean(by_step[s]) for s in steps],
        [min(by_step[s]) for s in steps],
        [max(by_step[s]) for s in steps],
    )
