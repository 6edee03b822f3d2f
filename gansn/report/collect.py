"""Read a sweep as Hydra and the trainer recorded it: its axes and its run directories.

A run dir holds ``config.yaml`` (resolved) or ``.hydra/config.yaml``, ``.hydra/overrides.yaml``,
``status.json``, ``metrics.jsonl``, ``checkpoints/last.pt`` and ``samples/final.png``; the
sweep's own record is Hydra's ``<sweep dir>/multirun.yaml``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

# Statuses under which a run's logged numbers are trusted in the tables.  A "running" or
# "interrupted" run still contributes its last logged values (and is flagged); a "failed"
# run never does, so one diverged seed cannot drag a mean without the reader seeing why.
CONTRIBUTING_STATUSES = ("completed", "running", "interrupted")


@dataclass
class Run:
    """One run dir as read from disk: ``flat`` is its config with dotted keys, ``choices``
    its overrides ``{key: value string}``, ``series`` each tag's ``[(step, value), ...]``."""

    path: Path
    rel: str
    config: dict[str, Any] = field(default_factory=dict)
    flat: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    status: str = "failed"
    step: int | None = None
    error: str | None = None
    wall_time_s: float | None = None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None
    n_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def contributes(self) -> bool:
        """Whether this run's numbers enter the aggregated tables."""
        return self.status in CONTRIBUTING_STATUSES and bool(self.series)

    @property
    def seed(self) -> Any:
        return self.flat.get("seed")

    @property
    def checkpoint(self) -> Path | None:
        p = self.path / "checkpoints" / "last.pt"
        return p if p.is_file() else None

    @property
    def final_samples(self) -> Path | None:
        p = self.path / "samples" / "final.png"
        return p if p.is_file() else None


@dataclass(frozen=True)
class Axis:
    """One swept key: ``override`` as Hydra recorded it (``norm@d_norm``, ``optim.g.lr``) and
    ``key``, where its value lands in the resolved config (``d_norm.name``, ``optim.g.lr``)."""

    override: str
    key: str

    def value(self, run: Run) -> Any:
        # The resolved config first: ``1e-4`` is a float there and a string in the override.
        return run.flat[self.key] if self.key in run.flat else run.choices.get(self.override)


def _is_run_dir(path: Path) -> bool:
    files = (".hydra/config.yaml", "config.yaml", "metrics.jsonl")
    return any((path / f).is_file() for f in files) or (path / "checkpoints").is_dir()


def find_run_dirs(sweep_dir: Path, *, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """All run dirs under ``sweep_dir`` (itself included), in job-number order.

    Hidden dirs (``.hydra`` holds a ``config.yaml`` too) are never run dirs, and a run dir's
    own subfolders are not searched.
    """
    excluded, found, todo = {p.resolve() for p in exclude}, [], [Path(sweep_dir)]
    while todo:
        d = todo.pop()
        if d.resolve() in excluded:
            continue
        if _is_run_dir(d):
            found.append(d)
        else:
            subdirs = [c for c in d.iterdir() if c.is_dir() and not c.is_symlink()]
            todo += [c for c in subdirs if not c.name.startswith(".")]
    # Hydra numbers jobs 0, 1, ..., 10: "10" sorts after "9", keeping the sweep's job order.
    nat = [[int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.as_posix())] for p in found]
    return [p for _, p in sorted(zip(nat, found))]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; None if missing or unreadable (logged)."""
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        log.warning("cannot read %s: %s", path, err)
        return None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}``; lists stay leaves (betas are one value)."""
    out: dict[str, Any] = {}
    for k, v in (d if isinstance(d, dict) else {}).items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def override_key(item: str) -> str | None:
    """``norm@d_norm=spectral`` -> ``norm@d_norm``; ``+x=1`` -> ``x``; None for ``~x``."""
    key, eq, _ = item.partition("=")
    return key.lstrip("+") if eq and not key.startswith("~") else None


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON objects of ``metrics.jsonl`` and warnings about the lines skipped: a line cut
    by a crash mid-write costs that line, not the report."""
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            warnings.append(f"{path.name}: skipped unparsable line {i} (truncated write?)")
            continue
        if isinstance(obj, dict):
            records.append(obj)
        else:
            warnings.append(f"{path.name}: skipped line {i}: not a JSON object")
    return records, warnings


def _series(records: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    by_tag: dict[str, dict[int, float]] = {}
    for rec in records:
        step = rec.get("step")
        if type(step) not in (int, float):
            continue
        for key, value in rec.items():
            # A tag logged twice at one step (resume re-logs the same step): last wins.
            if key not in ("step", "time") and type(value) in (int, float):
                by_tag.setdefault(key, {})[int(step)] = float(value)
    return {tag: sorted(v.items()) for tag, v in by_tag.items()}


def load_run(path: Path, root: Path) -> Run:
    """Read one run dir. Never raises on a broken run: problems become ``warnings``."""
    run = Run(path=path, rel=path.relative_to(root).as_posix() if path != root else ".")
    # The trainer's config.yaml is resolved (no ${...}); Hydra's copy is the fallback.
    cfg = read_yaml(path / "config.yaml")
    cfg = cfg if isinstance(cfg, dict) else read_yaml(path / ".hydra" / "config.yaml")
    run.config = cfg if isinstance(cfg, dict) else {}
    run.flat = flatten(run.config)
    ov = read_yaml(path / ".hydra" / "overrides.yaml")
    run.overrides = [str(o) for o in ov] if isinstance(ov, list) else []
    run.choices = {k: o.partition("=")[2] for o in run.overrides if (k := override_key(o))}
    try:
        st = json.loads((path / "status.json").read_text())
        run.status = str(st.get("status") or "failed")
        run.step, run.error, wt = st.get("step"), st.get("error"), st.get("wall_time_s")
        run.wall_time_s = float(wt) if isinstance(wt, int | float) else None
    except FileNotFoundError:
        run.error = "no status.json (the run crashed before writing it)"
    except (json.JSONDecodeError, OSError, AttributeError) as err:
        run.error = f"unreadable status.json: {err}"

    records, run.warnings = read_metrics(path / "metrics.jsonl")
    run.n_lines, run.series = len(records), _series(records)
    protocols = [r["protocol"] for r in records if isinstance(r.get("protocol"), dict)]
    run.protocol = protocols[-1] if protocols else None
    times = [r["time"] for r in records if isinstance(r.get("time"), int | float)]
    if run.wall_time_s is None and times and math.isfinite(max(times)):
        run.wall_time_s = float(max(times))
    if run.step is None and run.series:
        run.step = max(s[-1][0] for s in run.series.values())
    if not run.series and run.status != "failed":
        run.warnings.append("no metrics logged")
    for w in run.warnings:
        log.warning("%s: %s", run.rel, w)
    return run


def collect_runs(sweep_dir: Path, *, exclude: tuple[Path, ...] = ()) -> list[Run]:
    """Read every run dir under ``sweep_dir`` in job order."""
    return [load_run(p, Path(sweep_dir)) for p in find_run_dirs(sweep_dir, exclude=exclude)]


def _multirun(sweep_dir: Path) -> tuple[dict[str, Any], list[str]] | None:
    """``hydra.sweeper.params`` and ``hydra.overrides.task`` of multirun.yaml, if any."""
    mr = read_yaml(Path(sweep_dir) / "multirun.yaml")
    hydra = mr.get("hydra") if isinstance(mr, dict) else None
    if not isinstance(hydra, dict):
        return None
    params = (hydra.get("sweeper") or {}).get("params") or {}
    return dict(params), [str(t) for t in (hydra.get("overrides") or {}).get("task") or []]


def canon(v: Any) -> str:
    """A hashable, order-independent form of a config value."""
    return json.dumps(v, sort_keys=True, default=str)


def sweep_axes(sweep_dir: Path, runs: Sequence[Run]) -> list[Axis]:
    """The keys the sweep varies, in Hydra's job-nesting order.

    The candidates are the keys Hydra swept over: multirun.yaml's ``hydra.sweeper.params``
    then ``hydra.overrides.task`` (the order Hydra merges them in); for a folder of single
    runs with no multirun.yaml, the keys of the runs' ``.hydra/overrides.yaml``.  A
    candidate is an axis when the runs' values of it differ: ``dataset=ring8`` on the
    command line replaces a preset's ``dataset: ring8,grid25``, and only the runs show that.
    """
    mr = _multirun(sweep_dir)
    items = [f"{k}={v}" for k, v in mr[0].items()] + mr[1] if mr else []
    items = items or [o for r in runs for o in r.overrides]
    axes = []
    for override in dict.fromkeys(k for k in map(override_key, items) if k):
        # ``group@package`` puts the choice at ``package``; a group's options carry ``name``.
        pkg = override.rpartition("@")[2]
        named = f"{pkg}.name"
        grouped = any(named in r.flat for r in runs) and not any(pkg in r.flat for r in runs)
        axis = Axis(override, named if grouped else pkg)
        # A run with neither config nor overrides (killed at start-up) has no say.
        if len({canon(axis.value(r)) for r in runs if r.flat or r.choices}) > 1:
            axes.append(axis)
    return axes


def sweep_commands(sweep_dir: Path, runs: list[Run]) -> tuple[str | None, list[tuple[str, str]]]:
    """The ``gansn-train -m`` command of the sweep and one ``gansn-train`` command per run.

    The sweep command is Hydra's ``hydra.overrides.task``; without a multirun.yaml it is
    rebuilt from the runs' overrides, values of one key joined by commas in first-seen order
    (Hydra's sweep syntax, which keeps list values intact).
    """
    mr = _multirun(sweep_dir)
    task = mr[1] if mr else None
    if task is None:
        per_key: dict[str, dict[str, None]] = {}
        for key, _, value in (o.partition("=") for r in runs for o in r.overrides):
            per_key.setdefault(key, {})[value] = None  # an ordered set: first-seen order
        task = [f"{k}={','.join(v)}" for k, v in per_key.items()]
    sweep = "gansn-train -m " + " ".join(map(shlex.quote, task)) if task else None
    cmd = [(r.rel, " ".join(["gansn-train", *map(shlex.quote, r.overrides)])) for r in runs]
    return sweep, [c for c, r in zip(cmd, runs) if r.overrides]
