#!/usr/bin/env python
"""bf16 against fp32 on the same seeds of a study's cells (docs/showcase/bf16/PLAN.md).

    python scripts/bf16_check.py --bf16 docs/showcase/bf16/logs \
        --fp32 docs/showcase/fmnist_study/logs --cells C_spectral,C_none --seeds 2,3,4 \
        --out docs/showcase/bf16/report.md

Both folders hold ``<setting>_<norm>_s<seed>/metrics.jsonl`` and a ``spectra_breadth.json``
(``scripts/add_seed_logs.py`` writes both). Per cell and metric: each run's final score (the
mean of its last 3 evaluations, as gansn-report scores runs), Welch's test of bf16 against
fp32 with Holm's correction over the table, the difference detectable with 80 % power, the
pooled sample std of the two groups, and the plan's three-way verdict. The Lipschitz bracket
at the end and the median step time are listed, descriptive.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from gansn.cli.args import ArgumentParser
from gansn.study.stats import detectable_difference, holm, run_score, sample_std, summarize, welch

METRICS = {"metrics/fid": "FID", "metrics/recall": "recall", "breadth": "spectra breadth"}


def _g(x: float | None, d: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{d}g}"


def _records(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a truncated last line of a killed run
    return out


def _final(records: list[dict], tag: str) -> float:
    """The run's final score of ``tag`` as gansn-report takes it (NaN when it diverged)."""
    points = [
        (r["step"], float(r[tag])) for r in records if isinstance(r.get(tag), (int, float, str))
    ]
    score = run_score(points)
    return score if isinstance(score, float) else math.nan


def _last(records: list[dict], tag: str) -> float | None:
    vals = [r[tag] for r in records if isinstance(r.get(tag), (int, float))]
    return float(vals[-1]) if vals else None


def scores(logs: Path, name: str) -> dict[str, float] | None:
    run = logs / name
    if not (run / "metrics.jsonl").is_file():
        return None
    if json.loads((run / "status.json").read_text()).get("status") != "completed":
        return None
    recs = _records(run)
    breadth = json.loads((logs / "spectra_breadth.json").read_text())["runs"].get(name)
    steps = [r["time/step_ms"] for r in recs if isinstance(r.get("time/step_ms"), (int, float))]
    return {
        "metrics/fid": _final(recs, "metrics/fid"),
        "metrics/recall": _final(recs, "metrics/recall"),
        "breadth": statistics.fmean(breadth) if breadth else math.nan,
        "upper": _last(recs, "lipschitz/upper_operator"),
        "lower": _last(recs, "lipschitz/lower"),
        "step_ms": statistics.median(steps) if steps else math.nan,
    }


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="bf16_check", description=__doc__.split("\n")[0])
    p.add_argument("--bf16", type=Path, required=True, help="logs folder of the bf16 runs")
    p.add_argument("--fp32", type=Path, required=True, help="logs folder of the fp32 runs")
    p.add_argument("--cells", default="C_spectral,C_none", help="<setting>_<norm>, comma-separated")
    p.add_argument("--seeds", default="2,3,4", help="seeds, comma-separated")
    p.add_argument("--out", type=Path, required=True, help="markdown file to write")
    args = p.parse_args(argv)
    cells, seeds = args.cells.split(","), [int(s) for s in args.seeds.split(",")]
    rows, pvals, runs, missing = [], [], [], []
    for cell in cells:
        got = {"bf16": {}, "fp32": {}}
        for kind, folder in (("bf16", args.bf16), ("fp32", args.fp32)):
            for s in seeds:
                sc = scores(folder, f"{cell}_s{s}")
                if sc is None:
                    missing.append(f"{kind} {cell}_s{s}")
                else:
                    got[kind][s] = sc
                    runs.append((cell, s, kind, sc))
        for tag in METRICS:
            a = [v[tag] for v in got["bf16"].values() if math.isfinite(v[tag])]
            b = [v[tag] for v in got["fp32"].values() if math.isfinite(v[tag])]
            test = welch(a, b)
            pooled = math.sqrt((sample_std(a) ** 2 + sample_std(b) ** 2) / 2)
            dd = detectable_difference(sample_std(a), len(a), sample_std(b), len(b))
            rows.append((cell, tag, a, b, test, pooled, dd))
            pvals.append(test.p)
    adjusted = holm(pvals)
    complete = not missing

    def cell_text(v: list[float]) -> str:
        if len(v) < 2:
            return f"{_g(statistics.fmean(v)) if v else '–'} (n {len(v)})"
        sm = summarize(v)
        return f"{_g(sm.mean)} [{_g(sm.low)}, {_g(sm.high)}] (n {len(v)})"

    lines = [
        "# bf16 autocast vs fp32: the Fashion-MNIST study's C cells, same seeds",
        "",
        "Generated by `python scripts/bf16_check.py` (the analysis fixed in "
        "[PLAN.md](PLAN.md) before the runs). A run's score: the mean of its last 3 "
        "evaluations (FID, recall: 2,000 generated vs 2,000 real images, classifier features); "
        "breadth: D's mean spectra breadth at the end. Cells: mean [95 % t CI] (n); Welch's "
        "test, Holm over the table; detectable: the difference found with 80 % power; "
        "pooled s: the seed-to-seed std of the two groups; within: the CI of the difference "
        "inside ± pooled s.",
        "",
        "| cell | metric | bf16 | fp32 | bf16 − fp32 | Holm p | detectable | pooled s | within |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sig, within_all = False, True
    for (cell, tag, a, b, test, pooled, dd), hp in zip(rows, adjusted, strict=True):
        sig |= hp is not None and hp <= 0.05
        within = test.low is not None and -pooled < test.low and test.high < pooled
        within_all &= within
        lines.append(
            f"| {cell} | {METRICS[tag]} | {cell_text(a)} | {cell_text(b)} | {_g(test.diff)} "
            f"[{_g(test.low)}, {_g(test.high)}] | {_g(hp, 2)} | {_g(dd)} | {_g(pooled)} "
            f"| {'yes' if within else 'no'} |"
        )
    if not complete:
        verdict = "no verdict: runs missing (" + ", ".join(missing) + ")."
    elif sig:
        verdict = "**bf16 differs** (a Holm-significant difference): studies stay fp32."
    elif within_all:
        verdict = "**bf16 within seed spread**: every CI lies inside ± the pooled std."
    else:
        verdict = (
            "**undecided**: no significant difference, but not every CI lies inside ± the "
            "pooled std; no fast profile for studies, `amp=bf16` stays opt-in."
        )
    lines += ["", f"**Verdict (the plan's rule):** {verdict}", ""]
    lines += [
        "Per run (descriptive): final FID, recall, breadth; D's bracket at the end (largest "
        "measured gradient-norm lower bound, operator-norm upper bound); median step time.",
        "",
        "| cell | seed | amp | FID | recall | breadth | bracket | step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell, s, kind, sc in sorted(runs, key=lambda r: (r[0], r[1], r[2])):
        lines.append(
            f"| {cell} | {s} | {kind} | {_g(sc['metrics/fid'])} | {_g(sc['metrics/recall'])} "
            f"| {_g(sc['breadth'])} | {_g(sc['lower'])} ≤ L ≤ {_g(sc['upper'])} "
            f"| {_g(sc['step_ms'])} ms |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
