"""The Fashion-MNIST study's cell table of docs/studies.md, from the study's summary.json.

    python scripts/fmnist_cells.py docs/showcase/fmnist_study/summary.json

Per D norm and setting: seeds, FID and recall (final score: the mean of the last 3
evaluations) and D's spectra breadth averaged over layers, each as the mean over seeds with
its 95 % t confidence interval (the report's own numbers, laid out side by side).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gansn.study.stats import summarize


def _g(x: float) -> str:
    return f"{x:.3g}"


def cell(values: list[float]) -> str:
    if len(values) < 2:
        return _g(values[0])
    s = summarize(values)
    return f"{_g(s.mean)} [{_g(s.low)}, {_g(s.high)}]"


def table(summary: dict) -> str:
    settings = summary["settings"]
    head = ["D norm"]
    for s in settings:
        name = s["values"]["setting"]
        head += [f"{name}: seeds", f"{name}: FID", f"{name}: recall", f"{name}: breadth"]
    norms = [r["norm"] for r in settings[0]["rows"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for norm in norms:
        out = [norm]
        for s in settings:
            row = next(r for r in s["rows"] if r["norm"] == norm)
            m = row["metrics"]
            breadth = [sum(v) / len(v) for v in s["spectra_breadth"]["runs"][norm]]
            out += [
                str(row["n"]),
                cell(m["metrics/fid:final"]["values"]),
                cell(m["metrics/recall:final"]["values"]),
                cell(breadth),
            ]
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
