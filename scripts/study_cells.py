"""A study's cell table for docs/studies.md, from its report's summary.json.

    python scripts/study_cells.py docs/showcase/fmnist_study/summary.json \
        [--metrics "metrics/fid:final=FID,metrics/recall:final=recall"] [--no-breadth]

Per D norm and table (setting, or dataset): seeds, each metric (``:final`` is a run's final
score, the mean of its last 3 evaluations; ``lipschitz:upper``/``lipschitz:lower`` D's
bracket at the end) and D's spectra breadth averaged over layers, each as the mean over
seeds with its 95 % t confidence interval: the report's own numbers, laid out side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

from gansn.cli.args import ArgumentParser, run_script
from gansn.errors import ConfigError
from gansn.study.stats import summarize

DEFAULT_METRICS = "metrics/fid:final=FID,metrics/recall:final=recall"


def _g(x: float) -> str:
    return f"{x:.3g}"


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) < 2:
        return _g(values[0])
    s = summarize(values)
    return f"{_g(s.mean)} [{_g(s.low)}, {_g(s.high)}]"


def table(summary: dict, metrics: dict[str, str], breadth: bool = True) -> str:
    settings = summary["settings"]
    head = ["D norm"]
    for s in settings:
        name = "/".join(map(str, s["values"].values())) or "all"
        head += [f"{name}: seeds", *(f"{name}: {label}" for label in metrics.values())]
        head += [f"{name}: breadth"] if breadth else []
    norms = list(dict.fromkeys(r["norm"] for s in settings for r in s["rows"]))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for norm in norms:
        out = [norm]
        for s in settings:
            row = next((r for r in s["rows"] if r["norm"] == norm), None)
            if row is None:
                out += ["0"] + ["–"] * (len(metrics) + breadth)
                continue
            out.append(str(row["n"]))
            for key in metrics:
                if key not in row["metrics"]:
                    raise ConfigError(f"no {key!r} in the summary; it has {sorted(row['metrics'])}")
                out.append(cell(row["metrics"][key]["values"]))
            if breadth:
                runs = (s.get("spectra_breadth") or {"runs": {}})["runs"].get(norm, [])
                out.append(cell([sum(v) / len(v) for v in runs]))
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", type=Path, help="a report's summary.json")
    ap.add_argument(
        "--metrics", default=DEFAULT_METRICS, help="comma-separated KEY=LABEL (summary keys)"
    )
    ap.add_argument("--no-breadth", action="store_true", help="leave out the spectra breadth")
    args = ap.parse_args()
    if not args.summary.is_file():
        raise ConfigError(f"{args.summary} does not exist: pass a report's summary.json")
    metrics = dict(
        item.split("=", 1) if "=" in item else (item, item) for item in args.metrics.split(",")
    )
    print(table(json.loads(args.summary.read_text()), metrics, breadth=not args.no_breadth))


if __name__ == "__main__":
    run_script(main, "study_cells")
