"""Read the run directories of a sweep into plain records.

Relies only on the run-directory contract the trainer writes: ``config.yaml`` (resolved) or
``.hydra/config.yaml``, ``.hydra/overrides.yaml``, ``status.json``, ``metrics.jsonl``,
``checkpoints/`` and ``samples/``.  Nothing here needs torch or matplotlib.
"""

from __future__ import annotations

import json
import logging
import math
import re
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
    """One run directory, as read from disk.

    ``series`` maps each numeric tag to its ``[(step, value), ...]`` sorted by step;
    ``config`` is the nested config dict; ``flat`` the same flattened to dotted keys.
    """

    path: Path
    rel: str
    config: dict[str, Any] = field(default_factory=dict)
    flat: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    status: str = "failed"
    step: int | None = None
    error: str | None = None
    wall_time_s: float | None = None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None
    n_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def has_metrics(self) -> bool:
        return bool(self.series)

    @property
    def contributes(self) -> bool:
        """Whether this run's numbers enter the aggregated tables."""
        return self.status in CONTRIBUTING_STATUSES and self.has_metrics

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

    def final(self, tag: str) -> tuple[int, float] | None:
        """The last logged ``(step, value)`` of ``tag``, or None."""
        s = self.series.get(tag)
        return s[-1] if s else None


def is_run_dir(path: Path) -> bool:
    """A run dir holds any of the files the trainer or Hydra writes into one."""
    return (
        (path / ".hydra" / "config.yaml").is_file()
        or (path / "config.yaml").is_file()
        or (path / "metrics.jsonl").is_file()
        or (path / "checkpoints").is_dir()
    )


def _natural_key(path: Path) -> list[Any]:
    # Hydra numbers jobs 0, 1, ..., 10: sort "10" after "9" so the job order (which follows
    # the order of the sweep's override values) is kept.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def find_run_dirs(sweep_dir: Path, *, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """All run dirs under ``sweep_dir`` (itself included), in natural (job number) order.

    Hidden dirs (``.hydra`` holds a ``config.yaml`` too) are never run dirs, and a run dir's
    own subfolders are not searched.
    """
    sweep_dir = Path(sweep_dir)
    excluded = {p.resolve() for p in exclude}
    found: list[Path] = []

    def walk(d: Path) -> None:
        if d.resolve() in excluded:
            return
        if is_run_dir(d):
            found.append(d)
            return
        for child in sorted(d.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and not child.is_symlink():
                walk(child)

    walk(sweep_dir)
    return sorted(found, key=_natural_key)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; None if missing or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        log.warning("cannot read %s: %s", path, err)
        return None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}``; lists stay leaves (betas are one value)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


def overrides_to_flat(overrides: list[str]) -> dict[str, Any]:
    """Turn Hydra override strings into dotted config keys.

    ``norm@d_norm=spectral`` selects the ``norm`` group into ``d_norm``, so it sets
    ``d_norm.name``; ``optim.g.lr=1e-4`` sets that key; ``~key`` deletions are ignored.
    """
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item or item.startswith("~"):
            continue
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            parsed = value
        if "@" in key:
            out[f"{key.split('@', 1)[1]}.name"] = parsed
        else:
            out[key] = parsed
    return out


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Read ``metrics.jsonl``: the parsed lines and a list of warnings.

    A line that does not parse (the trainer crashed mid-write) is skipped with a warning
    rather than failing the whole report.
    """
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    if not path.is_file():
        return records, warnings
    with path.open("r", errors="replace") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
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
        if not isinstance(step, int | float) or isinstance(step, bool):
            continue
        for key, value in rec.items():
            if key in ("step", "time") or isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                # A tag logged twice at one step (resume re-logs the same step): last wins.
                by_tag.setdefault(key, {})[int(step)] = float(value)
    return {tag: sorted(v.items()) for tag, v in by_tag.items()}


def load_run(path: Path, root: Path) -> Run:
    """Read one run dir. Never raises on a broken run: problems become ``warnings``."""
    path = Path(path)
    rel = path.relative_to(root).as_posix() if path != root else "."
    run = Run(path=path, rel=rel)

    # The trainer's config.yaml is resolved (no ${...}); Hydra's copy is the fallback.
    cfg = read_yaml(path / "config.yaml")
    if not isinstance(cfg, dict):
        cfg = read_yaml(path / ".hydra" / "config.yaml")
    run.config = cfg if isinstance(cfg, dict) else {}
    ov = read_yaml(path / ".hydra" / "overrides.yaml")
    run.overrides = [str(o) for o in ov] if isinstance(ov, list) else []
    run.flat = flatten(run.config)
    for key, value in overrides_to_flat(run.overrides).items():
        run.flat.setdefault(key, value)

    status_path = path / "status.json"
    if status_path.is_file():
        try:
            st = json.loads(status_path.read_text())
            run.status = str(st.get("status") or "failed")
            run.step = st.get("step")
            run.error = st.get("error")
            wt = st.get("wall_time_s")
            run.wall_time_s = float(wt) if isinstance(wt, int | float) else None
        except (json.JSONDecodeError, OSError, AttributeError) as err:
            run.status, run.error = "failed", f"unreadable status.json: {err}"
    else:
        run.status = "failed"
        run.error = "no status.json (the run crashed before writing it)"

    records, warnings = read_metrics(path / "metrics.jsonl")
    run.warnings.extend(warnings)
    run.n_lines = len(records)
    run.series = _series(records)
    for rec in records:
        if isinstance(rec.get("protocol"), dict):
            run.protocol = rec["protocol"]
    if run.wall_time_s is None:
        times = [r["time"] for r in records if isinstance(r.get("time"), int | float)]
        if times and math.isfinite(max(times)):
            run.wall_time_s = float(max(times))
    if run.step is None and run.series:
        run.step = max(s[-1][0] for s in run.series.values())
    if not run.series and run.status != "failed":
        run.warnings.append("no metrics logged")
    for w in run.warnings:
        log.warning("%s: %s", rel, w)
    return run


def collect_runs(sweep_dir: Path, *, exclude: tuple[Path, ...] = ()) -> list[Run]:
    """Read every run dir under ``sweep_dir`` in job order."""
    root = Path(sweep_dir)
    return [load_run(p, root) for p in find_run_dirs(root, exclude=exclude)]
