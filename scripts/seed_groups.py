"""Shift between two groups of seeds of a study (e.g. seeds run on two hosts), per cell.

    python scripts/seed_groups.py docs/showcase/fmnist_study --early 0,1 \
        --metrics metrics/fid,metrics/recall [--out shift.md]

For every table row (one normalization in one setting) and metric, the shift is
mean(final scores of the other seeds) - mean(final scores of the ``--early`` seeds), read from
the report's summary.json. Over the cells that have both groups, the mean shift is given with
its 95 % Student-t interval and the one-sample t test of "no shift" (cells as the units), with
each cell's shift beside it. A shift that is large against the seeds' spread means the two
groups were not measured alike (another host, classifier or code), and pooling them needs
care.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import scipy.stats as sst

from gansn.cli.args import ArgumentParser, comma_list, run_script
from gansn.errors import ConfigError
from gansn.schema import Int, Str
from gansn.study.stats import summarize


def cell_shifts(
    summary: dict, metric: str, early: set[int], score: str = "final"
) -> list[tuple[str, float, int, int]]:
    """``(cell label, shift, n early, n late)`` for every row with both groups of seeds."""
    out = []
    for setting in summary["settings"]:
        where = ", ".join(f"{k}={v}" for k, v in setting["values"].items())
        for row in setting["rows"]:
            stat = row["metrics"].get(f"{metric}:{score}")
            if not stat or stat.get("diverged") or len(stat["values"]) != len(row["seeds"]):
                continue  # diverged runs leave the values unaligned with the seeds
            pairs = list(zip(row["seeds"], stat["values"]))
            a = [v for s, v in pairs if s in early]
            b = [v for s, v in pairs if s not in early]
            if a and b:
                shift = statistics.fmean(b) - statistics.fmean(a)
                out.append((f"{where}, {row['norm']}", shift, len(a), len(b)))
    return out


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a report folder holding summary.json")
    ap.add_argument("--early", type=comma_list(Int(0)), required=True, help="one group's seeds")
    ap.add_argument("--metrics", type=comma_list(Str()), default="metrics/fid,metrics/recall")
    ap.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = ap.parse_args()
    path = args.report / "summary.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: build the report with gansn-report first")
    summary = json.loads(path.read_text())
    early = set(args.early)
    lines = [
        f"Shift = mean(other seeds) - mean(seeds {sorted(early)}), per cell; final scores "
        f"(mean of each run's last {summary.get('last_k', 3)} evaluations).",
        "",
        "| metric | cells | mean shift [95 % CI] | p (no shift) | per cell |",
        "|---|---|---|---|---|",
    ]
    for metric in args.metrics:
        cells = cell_shifts(summary, metric, early)
        s = summarize(shift for _, shift, _, _ in cells)
        if s is None:
            lines.append(f"| {metric} | 0 | no cell has both groups | | |")
            continue
        p = sst.ttest_1samp(s.values, 0.0).pvalue if s.n > 1 else float("nan")
        ci = f"[{s.low:.3g}, {s.high:.3g}]" if s.low is not None else ""
        each = "; ".join(f"{c}: {v:+.3g}" for c, v, _, _ in cells)
        lines.append(f"| {metric} | {s.n} | {s.mean:+.3g} {ci} | {p:.3f} | {each} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    run_script(main, "seed_groups")
