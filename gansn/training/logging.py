"""Run outputs: TensorBoard scalars/images, ``metrics.jsonl`` and ``status.json``."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from gansn.utils import atomic_write

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends one JSON object per line to ``<run dir>/metrics.jsonl``.

    Every line has ``step`` (generator step) and ``time`` (seconds of training so far) plus
    flat TensorBoard-tag keys (``"loss/d"``, ``"metrics/fid"``, ...).  Lines are flushed as
    they are written; a crash can at worst leave a truncated last line, which readers skip.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run redoes those steps)."""
        if not self.path.exists():
            return
        kept = [line for line in read_jsonl(self.path) if line.get("step", 0) <= step]
        text = "".join(json.dumps(line) + "\n" for line in kept)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))

    def append(self, step: int, time_s: float, values: dict[str, Any]) -> None:
        record = {"step": int(step), "time": round(float(time_s), 3)}
        record.update({k: _plain(v) for k, v in values.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Inf; keep them visible as strings
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return _plain(v.item())
    return v


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a ``metrics.jsonl``; a torn last line is skipped."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d is not valid JSON (torn write?); skipped", path, n)
    return out


def write_status(run_dir: str | Path, **fields: Any) -> None:
    """``<run dir>/status.json``: status (running|completed|failed|interrupted), step, error."""
    text = json.dumps(fields, indent=2, default=str) + "\n"
    atomic_write(Path(run_dir) / "status.json", lambda tmp: tmp.write_text(text))
