"""Read a sweep as Hydra and the trainer recorded it: its axes and its run directories.

A run dir holds ``config.yaml`` (resolved) or ``.hydra/config.yaml``, ``.hydra/overrides.yaml``,
``status.json``, ``metrics.jsonl``, ``checkpoints/last.pt`` and ``samples/final.png``; the
sweep's own record is Hydra's ``<sweep dir>/multirun.yaml``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from gansn.schema import complete

log = logging.getLogger(__name__)

# The trainer's NonFiniteLossError messages: "loss/d is nan at G step 812; ..." and
# "G's weights are NaN/Inf after G step 812; ...".
_DIVERGED = re.compile(r"is [-+]?(?:nan|inf)\w* at G step (\d+)|NaN/Inf after G step (\d+)")
# The metric logger writes a non-finite value as the string of the float.
_NON_FINITE = {"nan", "inf", "-inf", "infinity", "-infinity"}

# Any of these makes a folder a run dir.
RUN_MARKERS = (".hydra/config.yaml", "config.yaml", "metrics.jsonl", "checkpoints")


@dataclass
class Run:
    """One run dir as read from disk: ``config`` as resolved, ``overrides`` as Hydra recorded
    them, ``series`` each logged tag's ``[(step, value), ...]``."""

    path: Path
    rel: str
    config: dict[str, Any]
    overrides: list[str]
    status: str = "failed"
    step: int | None = None
    error: str | None = None
    wall_time_s: float | None = None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None
    n_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    @cached_property
    def flat(self) -> dict[str, Any]:
        """The config with dotted keys (``optim.g.lr``)."""
        return flatten(self.config)

    @cached_property
    def full_config(self) -> dict[str, Any]:
        """The config with each key it lacks at its declared default (a run saved by an
        older gansn lacks the keys declared since).  ``config`` and ``flat`` stay as saved:
        the sweep's axes and settings compare what the runs recorded."""
        return complete(self.config)

    @property
    def choices(self) -> dict[str, str]:
        """The overrides as ``{key: value string}``."""
        return {k: o.partition("=")[2] for o in self.overrides if (k := override_key(o))}

    @property
    def diverged_step(self) -> int | None:
        """The G step at which training stopped on a NaN/Inf loss or weights (the trainer's
        failure message names it), else None."""
        m = _DIVERGED.search(self.error or "") if self.status == "failed" else None
        return int(m.group(1) or m.group(2)) if m else None

    @property
    def contributes(self) -> bool:
        """Whether this run enters the tables.  A running or interrupted run gives its
        last logged values (and is flagged); a run that diverged enters as diverged at its
        step (counted, never averaged); any other failed one never does, so a crash cannot
        drag a mean without the reader seeing why."""
        ok = self.status != "failed" or self.diverged_step is not None
        return ok and bool(self.series)

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


def find_run_dirs(sweep_dir: Path) -> list[Path]:
    """All run dirs under ``sweep_dir`` (itself included), in job-number order.

    Hidden dirs (``.hydra`` holds a ``config.yaml`` too) are never run dirs, and a run dir's
    own subfolders are not searched.  A symlink to a folder is followed (a study folder
    gathers runs from several places that way), each real folder once: a link back up the
    tree cannot loop, and two links to one run count it once.
    """
    found, todo, seen = [], [Path(sweep_dir)], set()
    while todo:
        d = todo.pop()
        real = d.resolve()
        if real in seen:
            continue
        seen.add(real)
        if any((d / m).exists() for m in RUN_MARKERS):
            found.append(d)
        else:
            subdirs = sorted(c for c in d.iterdir() if c.is_dir())  # is_dir() follows links
            # reversed: pop() then visits them in name order, so of two links to one run
            # the first name is the one kept
            todo += reversed([c for c in subdirs if not c.name.startswith(".")])
    # Hydra numbers jobs 0, 1, ..., 10: "10" sorts after "9", keeping the sweep's job order.
    nat = [[int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.as_posix())] for p in found]
    return [p for _, p in sorted(zip(nat, found))]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; None if missing or unparsable (a write cut short; logged)."""
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError as err:
        log.warning("cannot read %s: %s", path, err)
        return None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}``; lists stay leaves (betas are one value)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
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
    records, warnings = [], []
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    for i, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.append(f"{path.name}: skipped unparsable line {i} (truncated write?)")
    return records, warnings


def load_run(path: Path, root: Path) -> Run:
    """Read one run dir. Never raises on a broken run: problems become ``warnings``."""
    # The trainer's config.yaml is resolved (no ${...}); Hydra's copy is the fallback.
    cfg = read_yaml(path / "config.yaml") or read_yaml(path / ".hydra" / "config.yaml") or {}
    overrides = read_yaml(path / ".hydra" / "overrides.yaml") or []
    run = Run(path, path.relative_to(root).as_posix(), cfg, [str(o) for o in overrides])
    try:
        st = json.loads((path / "status.json").read_text())
        run.status, run.step, run.error = st["status"], st.get("step"), st.get("error")
        run.wall_time_s = st.get("wall_time_s")
    except FileNotFoundError:
        run.error = "no status.json (the run crashed before writing it)"

    records, run.warnings = read_metrics(path / "metrics.jsonl")
    run.n_lines = len(records)
    for rec in records:
        run.protocol = rec.get("protocol", run.protocol)
        for tag, value in rec.items():
            # Numbers only; the logger writes NaN/inf as strings (kept: a metric that went
            # NaN must show as diverged, not as its last finite value), the protocol as a dict.
            if isinstance(value, str) and value.lower() in _NON_FINITE:
                value = float(value)
            if tag not in ("step", "time") and type(value) in (int, float):
                run.series.setdefault(tag, []).append((rec["step"], float(value)))
    # A resumed run re-logs the steps after its checkpoint: the last value of a step wins.
    run.series = {tag: sorted(dict(s).items()) for tag, s in run.series.items()}
    times = [r["time"] for r in records if "time" in r]
    if run.wall_time_s is None and times:
        run.wall_time_s = float(max(times))
    if run.step is None and run.series:
        run.step = max(s[-1][0] for s in run.series.values())
    if not run.series and run.status != "failed":
        run.warnings.append("no metrics logged")
    for w in run.warnings:
        log.warning("%s: %s", run.rel, w)
    return run


def collect_runs(sweep_dir: Path) -> list[Run]:
    """Read every run dir under ``sweep_dir`` in job order."""
    return [load_run(p, Path(sweep_dir)) for p in find_run_dirs(sweep_dir)]


def _multirun(sweep_dir: Path) -> tuple[dict[str, Any], list[str]] | None:
    """``hydra.sweeper.params`` and ``hydra.overrides.task`` of multirun.yaml, if any."""
    mr = read_yaml(Path(sweep_dir) / "multirun.yaml")
    if mr is None:
        return None
    hydra = mr["hydra"]
    params = hydra.get("sweeper", {}).get("params") or {}
    return dict(params), [str(t) for t in hydra["overrides"]["task"]]


def _sweep_root(run: Path, top: Path) -> Path | None:
    """The folder of the multirun.yaml that ``run`` belongs to, searched up to ``top``."""
    # Lexically absolute, not resolved: a run reached through a symlink belongs to the
    # sweep it was found in, not to a multirun.yaml above the folder the link points to.
    top, run = Path(os.path.abspath(top)), Path(os.path.abspath(run))
    for d in (run, *run.parents):
        if (d / "multirun.yaml").is_file():
            return d
        if d == top:
            return None
    return None


def canon(v: Any) -> str:
    """A hashable, order-independent form of a config value."""
    return json.dumps(v, sort_keys=True, default=str)


# keys that never change what a run trains (report: whether the sweep writes a report;
# study: the claims and scoring its report applies)
NOT_AXES = frozenset({"report", "study"})


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
        if axis.key in NOT_AXES:
            continue
        # A run with neither config nor overrides (killed at start-up) has no say.
        if len({canon(axis.value(r)) for r in runs if r.flat or r.choices}) > 1:
            axes.append(axis)
    return axes


def sweep_commands(sweep_dir: Path, runs: list[Run]) -> tuple[str | None, list[tuple[str, str]]]:
    """The ``gansn-train -m`` command(s) of the sweep and one ``gansn-train`` command per run.

    A sweep's command is Hydra's ``hydra.overrides.task`` from its multirun.yaml.  A folder of
    several sweeps (each run under a multirun.yaml below ``sweep_dir``) gets one command per
    sweep, one per line.  Without multirun.yaml the command is rebuilt from the runs'
    overrides, values of one key joined by commas in first-seen order (Hydra's sweep syntax,
    which keeps list values intact) -- and only when that product of values is exactly the
    runs' set: otherwise the command would train runs that never existed, and there is none.
    """
    mr = _multirun(sweep_dir)
    if mr is not None:
        tasks = [mr[1]]
    elif runs and None not in (roots := {_sweep_root(r.path, sweep_dir) for r in runs}):
        tasks = [_multirun(root)[1] for root in sorted(roots)]  # type: ignore[index]
    else:
        per_key: dict[str, dict[str, None]] = {}
        for key, _, value in (o.partition("=") for r in runs for o in r.overrides):
            per_key.setdefault(key, {})[value] = None  # an ordered set: first-seen order
        with_overrides = [r for r in runs if r.overrides]
        distinct = {frozenset(r.overrides) for r in with_overrides}
        same_keys = len({frozenset(override_key(o) for o in r.overrides) for r in with_overrides})
        size = math.prod(len(v) for v in per_key.values())
        merged = [f"{k}={','.join(v)}" for k, v in per_key.items()]
        tasks = [merged] if size == len(distinct) and same_keys == 1 else []
    sweep = "\n".join(shlex.join(["gansn-train", "-m", *t]) for t in tasks if t) or None
    return sweep, [(r.rel, shlex.join(["gansn-train", *r.overrides])) for r in runs if r.overrides]
