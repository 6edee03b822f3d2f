"""Group runs into settings and normalization rows; mean and CI over seeds; best per column.

The sweep's axes (:func:`gansn.report.collect.sweep_axes`) split three ways: ``seed`` is
averaged over; the normalization axes (``d_norm``, ``g_norm``) make the rows of a table;
every other axis (dataset, optimizer setting, lr, loss, ...) makes a separate table
("setting"), because averaging over it would mix different experiments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from gansn.metrics.core import Direction, feature_tags, metric_tags, tag_info
from gansn.metrics.features import FEATURES
from gansn.report.collect import Axis, Run, canon
from gansn.report.render import format_value
from gansn.study.stats import LAST_K, Diverged, Score, run_score, summarize

LIP_UPPER = "lipschitz/upper_operator"
# Every one of these is a valid lower bound on D's Lipschitz constant, so their max is too.
LIP_LOWER = (
    "lipschitz/grad_real_max",
    "lipschitz/grad_fake_max",
    "lipschitz/grad_interp_max",
    "lipschitz/fd_ratio",
)


# Significant digits of a mean as the tables show it; ties are judged at this precision too.
MEAN_DIGITS = 4


def label(tag: str) -> str:
    """The registered label of a metric tag (``FID``); the report plots one other tag."""
    info = tag_info(tag)
    return info.label if info is not None else {"loss/d": "D loss"}.get(tag, tag)


def _space_name(name: str, protocol: Mapping[str, Any]) -> str:
    """``classifier`` -> ``classifier features``; raw features say what they are."""
    if name == "raw":
        dim = (protocol.get("extractors") or {}).get("raw", {}).get("dim")
        return "raw 2-D points" if dim == 2 else "raw pixels" if dim else "raw features"
    return {"inception": "Inception features"}.get(name, f"{name} features")


def feature_space(tag: str, protocols: Iterable[Mapping[str, Any] | None]) -> str | None:
    """The feature space ``tag`` was measured in, as the runs' protocols recorded it
    (``classifier features``, ``Inception features``, ``raw 2-D points``); None for a tag
    measured in no feature space, or when no run recorded a protocol.

    A FID of classifier features and one of Inception features are different numbers, so a
    reader must see which one a column or an axis holds.
    """
    tags = feature_tags()
    base, _, suffix = tag.rpartition("_")
    if tag not in tags and not (base in tags and suffix in FEATURES):
        return None
    # ``metrics/fid_inception``: the same metric run on a second extractor (metrics.core)
    names = [(suffix if tag not in tags else p.get("features"), p) for p in protocols if p]
    spaces = {_space_name(name, p) for name, p in names if name}
    if len(spaces) > 1:
        return "features differ: " + ", ".join(sorted(spaces))
    return spaces.pop() if spaces else None


def axis_label(tag: str, runs: Iterable[Run]) -> str:
    """``FID (classifier features)``; the plain label for a tag with no feature space."""
    space = feature_space(tag, (r.protocol for r in runs))
    return f"{label(tag)} ({space})" if space else label(tag)


@dataclass(frozen=True)
class Stat:
    """One column over the seeds of one row: mean, sample std (ddof 1) and the Student-t
    95 % CI of the mean of the finite scores, plus the runs that diverged.

    ``n`` counts the finite scores; ``diverged`` holds the step at which each other run's
    value became NaN/Inf (shown and counted, never replaced by an earlier value)."""

    mean: float | None
    std: float | None
    n: int
    values: tuple[float, ...]
    low: float | None = None
    high: float | None = None
    diverged: tuple[int | None, ...] = ()


def aggregate(scores: Iterable[Score | None]) -> Stat | None:
    """:class:`Stat` of per-run scores; None when no run has a score.

    A :class:`Diverged` score (or a bare NaN/Inf) is counted in ``diverged``, never
    averaged; a row whose every run diverged has ``mean`` None."""
    given = [v for v in scores if v is not None]
    if not given:
        return None
    bad = [v for v in given if isinstance(v, Diverged) or not math.isfinite(v)]
    diverged = tuple(v.step if isinstance(v, Diverged) else None for v in bad)
    s = summarize(v for v in given if not isinstance(v, Diverged))  # drops NaN/Inf
    if s is None:
        return Stat(None, None, 0, (), diverged=diverged)
    return Stat(s.mean, s.std, s.n, s.values, s.low, s.high, diverged)


def best_keys(stats: Mapping[str, Stat | None], how: Direction | None) -> set[str]:
    """The one key whose mean is strictly best under ``how``, or no key at all.

    Empty on a tie for best, when every row has the same mean (a column of zeros) and with
    fewer than 2 candidates: bold on a tie or on the only row with a number would claim a
    difference, or a comparison, that the numbers do not show.  Means are compared as the
    table shows them (``MEAN_DIGITS``): two rows that read the same are a tie.
    """
    shown = {
        k: float(f"{s.mean:.{MEAN_DIGITS}g}")
        for k, s in stats.items()
        if s is not None and s.mean is not None
    }
    if how is None or len(shown) < 2:
        return set()
    target = min(shown.values()) if how == "min" else max(shown.values())
    best = {k for k, m in shown.items() if m == target}
    return best if len(best) == 1 else set()


@dataclass(frozen=True)
class Column:
    """One table column: ``tag`` reduced per run by ``kind``: ``final`` the mean of the last
    ``k`` evaluations (:func:`run_score`), ``last`` the last value, ``best`` the best
    finite value over training; the lip_* kinds: the last value."""

    id: str
    label: str
    tag: str
    kind: Literal["final", "last", "best", "lip_upper", "lip_lower"]
    direction: Direction | None
    space: str | None = None  # the feature space, from the runs' protocols (feature_space)
    k: int = LAST_K

    @property
    def header(self) -> str:
        """``FID (final), classifier features``: the label and the space it was measured in."""
        return f"{self.label}, {self.space}" if self.space else self.label

    def value(self, run: Run) -> Score | None:
        """One run's score (:class:`Diverged` when it is not a number)."""
        points = run_series(run, self.tag)
        if run.diverged_step is not None and self.kind != "best":
            # The run stopped on a NaN/Inf loss: its last evaluation is not its result.
            return Diverged(run.diverged_step)
        if self.kind == "final":
            return run_score(points, self.k)
        if self.kind == "best":
            vals = [v for _, v in points if math.isfinite(v)]
            if not vals:
                return Diverged(points[0][0]) if points else None
            return min(vals) if self.direction == "min" else max(vals)
        return run_score(points, 1)


def table_columns(k: int) -> list[Column]:
    """Per metric tag registered for the tables: its final score (mean of the last ``k``
    evaluations), its last value (summary.json only) and its best; then Lipschitz."""
    cols = [
        Column(f"{tag}:{kind}", f"{info.label} ({kind})", tag, kind, info.direction, k=k)
        for tag, info in metric_tags().items()
        if info.table
        for kind in ("final", "last", "best")
    ]
    # No direction: a smaller Lipschitz constant is not "better" by itself.
    cols.append(Column("lipschitz:upper", "Lip. upper (end)", LIP_UPPER, "lip_upper", None))
    cols.append(Column("lipschitz:lower", "Lip. lower (end)", "lipschitz/lower", "lip_lower", None))
    return cols


def run_series(run: Run, tag: str) -> list[tuple[int, float]]:
    """A tag's series; ``lipschitz/lower`` is, per step, the max of the lower bounds."""
    if tag != "lipschitz/lower":
        return run.series.get(tag, [])
    per_step: dict[int, float] = {}
    for step, v in (sv for t in LIP_LOWER for sv in run.series.get(t, [])):
        if math.isfinite(v):  # every finite one is a valid bound; a NaN one is none
            per_step[step] = max(per_step.get(step, v), v)
    return sorted(per_step.items())


def short_key(key: str) -> str:
    """``optim.g.lr`` stays; ``model.name`` -> ``model``; ``d_norm.name`` -> ``d_norm``."""
    return key.removesuffix(".name")


def format_diverged(steps: Sequence[int | None]) -> str:
    """``2 diverged (steps 300, 812)``; empty for none."""
    if not steps:
        return ""
    where = ", ".join("?" if s is None else str(s) for s in steps)
    return f"{len(steps)} diverged (step{'s' if len(steps) > 1 else ''} {where})"


def format_stat(s: Stat | None) -> str:
    """``145 [124, 166]``: the mean (4 significant digits) and its 95 % t CI (3); ``—`` if
    none.  Diverged runs follow: ``… · 1 diverged (step 812)``."""
    if s is None:
        return "—"
    div = format_diverged(s.diverged)
    if s.mean is None:
        return div
    mean = f"{s.mean:.{MEAN_DIGITS}g}"
    if s.low is not None and s.high is not None:  # none for one seed
        mean = f"{mean} [{s.low:.3g}, {s.high:.3g}]"
    return f"{mean} · {div}" if div else mean


def format_values(values: Mapping[str, Any]) -> str:
    """``dataset=ring8, optim.g.lr=0.0001``."""
    return ", ".join(f"{short_key(k)}={format_value(v)}" for k, v in values.items())


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
    """Runs sharing the value of every axis except the normalization and the seed.

    ``fixed``: the config values the setting's choice brings along (``setting=A``: its lr
    and betas), shown to the reader, never grouped by.
    """

    index: int
    values: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    best: dict[str, set[str]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"s{self.index}"

    @property
    def label(self) -> str:
        return format_values(self.values) or "all runs"

    @property
    def full_label(self) -> str:
        return format_values({**self.values, **self.fixed})

    @property
    def runs(self) -> list[Run]:
        return [r for row in self.rows for r in row.runs]


@dataclass
class Study:
    """All runs of a sweep, grouped along its axes."""

    runs: list[Run]
    axes: list[Axis]
    row_keys: list[str]
    setting_keys: list[str]
    settings: list[Setting]


def row_label(values: Mapping[str, Any]) -> str:
    """``spectral``; ``batch / spectral`` when g_norm varies too (G first, as in G/D);
    ``spectral (n_power_iterations=2)`` for an axis among the norm's options."""
    parts = []
    for norm in ("g_norm", "d_norm"):
        name = values.get(f"{norm}.name", "")
        opts = [
            f"{k[len(norm) + 1 :]}={format_value(v)}"
            for k, v in values.items()
            if k.startswith(f"{norm}.") and k != f"{norm}.name"
        ]
        # A run killed before it wrote its config has no name; "?" keeps its row apart.
        head = "?" if name is None else str(name)
        parts.append(f"{head} ({', '.join(opts)})" if head and opts else head or ", ".join(opts))
    return " / ".join(p for p in parts if p) or "runs"


def _describe(settings: list[Setting], axes: Sequence[Axis]) -> None:
    """Fill ``Setting.fixed``: config leaves constant within each setting that differ between
    settings.  A per-run key (seed, a path) varies within a setting and a norm's options
    vary between its rows, so neither qualifies."""
    missing, axis_keys = object(), {a.key for a in axes}
    flats = [[r.flat for r in s.runs if r.flat] for s in settings]
    for k in dict.fromkeys(k for fs in flats for f in fs for k in f):
        vals = [{canon(f.get(k, missing)) for f in fs} for fs in flats]
        if k in axis_keys or any(len(v) > 1 for v in vals) or len(set().union(*vals)) < 2:
            continue
        for setting, fs in zip(settings, flats):
            if fs and k in fs[0]:
                setting.fixed[k] = fs[0][k]


def build_study(runs: Sequence[Run], axes: Sequence[Axis], last_k: int = LAST_K) -> Study:
    """Group runs into settings (tables) and rows (normalizations) along ``axes`` and
    aggregate each column over the seeds of a row; a run's final score is the mean of its
    last ``last_k`` evaluations."""
    row_axes = [a for a in axes if a.key.split(".", 1)[0] in ("d_norm", "g_norm")]
    if not any(a.key.startswith("d_norm") for a in row_axes) and any(
        "d_norm.name" in r.flat for r in runs
    ):
        # A sweep over something else with one norm still names its rows by that norm.
        row_axes.insert(0, Axis("norm@d_norm", "d_norm.name"))
    setting_axes = [a for a in axes if a not in row_axes and a.key != "seed"]
    settings: dict[str, Setting] = {}
    for run in runs:
        svals = {a.key: a.value(run) for a in setting_axes}
        setting = settings.setdefault(canon(svals), Setting(len(settings) + 1, svals))
        rvals = {a.key: a.value(run) for a in row_axes}
        row = next((r for r in setting.rows if canon(r.values) == canon(rvals)), None)
        if row is None:
            setting.rows.append(row := Row(row_label(rvals), rvals))
        row.runs.append(run)

    cols = table_columns(last_k)
    for setting in settings.values():
        for row in setting.rows:
            row.stats = {c.id: aggregate(c.value(r) for r in row.used) for c in cols}
        protocols = [r.protocol for row in setting.rows for r in row.used]
        setting.columns = [
            replace(c, space=feature_space(c.tag, protocols))
            for c in cols
            if any(row.stats[c.id] for row in setting.rows)
        ]
        setting.best = {
            c.id: best_keys({row.label: row.stats[c.id] for row in setting.rows}, c.direction)
            for c in setting.columns
        }
    if len(settings) > 1:
        _describe(list(settings.values()), axes)
    row_keys, setting_keys = [a.key for a in row_axes], [a.key for a in setting_axes]
    return Study(list(runs), list(axes), row_keys, setting_keys, list(settings.values()))
