#!/usr/bin/env python
"""Verdicts on a study's declared claims, from a report's summary.json.

    python scripts/verdicts.py docs/showcase/fmnist_study \
        --claims conf/experiment/norm_study_fmnist.yaml [--quick docs/showcase/fmnist_quick]

A thin caller of gansn's verdict engine (:mod:`gansn.study.verdicts`: Welch's test per
comparison, Holm within a claim, the detectable difference) on a report's summary.json,
with the claims of a study preset; it also reads the summaries of reports whose run logs
were not kept (their "final" column is each run's last value).  ``gansn-report`` writes
the same section into the report itself when the runs (or ``--claims``) declare them.
This script also answers, with ``--quick``, whether the one-seed quick variant points
the same way as every comparison the full study decides (the rule fixed before the full study ran).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gansn.cli.args import ArgumentParser, run_script
from gansn.errors import ConfigError
from gansn.study.verdicts import (
    CONTRADICTED,
    SUPPORTED,
    claims_from_file,
    judge_summary,
    render,
)


def markdown(blocks: list[tuple[str, Any]]) -> str:
    out = []
    for kind, what in blocks:
        if kind == "heading":
            out += [f"## {what}", ""]
        elif kind == "para":
            out += [what, ""]
        else:
            head, rows = what
            out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            out += ["| " + " | ".join(map(str, r)) + " |" for r in rows] + [""]
    return "\n".join(out)


def quick_agreement(full: dict[str, Any], quick: dict[str, Any], claims: list) -> str:
    """Whether the quick variant keeps the full study's conclusions: every comparison the
    full study decides (supports or contradicts, by the engine) must point the same way in
    the quick variant (its one seed's difference of means, which is all a user of the quick
    variant sees)."""
    full_v, quick_v = judge_summary(full, claims), judge_summary(quick, claims)
    q = {
        (v.claim.id, c.rival, c.metric): c
        for v in quick_v
        for c in v.comparisons
        if c.subject_values and c.rival_values
    }
    rows, kept = [], 0
    for v in full_v:
        for c in v.comparisons:
            if c.outcome not in (SUPPORTED, CONTRADICTED):
                continue
            qc = q.get((v.claim.id, c.rival, c.metric))
            same = qc is not None and (qc.gain > 0) == (c.outcome == SUPPORTED)
            kept += same
            qd = "–" if qc is None else ("subject better" if qc.gain > 0 else "rival better")
            rows.append(
                f"| {v.claim.id} / {c.metric} / {c.rival} | {c.outcome} | {qd} | "
                f"{'yes' if same else 'no'} |"
            )
    out = ["## Does the quick variant keep these conclusions?", ""]
    if not rows:
        return "\n".join(
            [
                *out,
                "**The full study decides no comparison, so the quick variant has none to keep.**",
            ]
        )
    answer = "yes" if kept == len(rows) else "no"
    out += ["| comparison | full study | quick variant | kept |", "|---|---|---|---|", *rows, ""]
    out.append(f"**Quick keeps the full study's conclusions: {answer}** ({kept} of {len(rows)}).")
    return "\n".join(out)


def _load(path: Path) -> dict[str, Any]:
    path = path / "summary.json" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give a gansn-report folder or summary.json")
    try:
        summary = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = f"{path}: not a report summary (gansn-report's summary.json): {err}"
        raise ConfigError(msg) from None
    if not isinstance(summary, dict) or "settings" not in summary:
        raise ConfigError(f"{path}: not a report summary (no 'settings'); give gansn-report's")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="verdicts", description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, help="report folder (or its summary.json)")
    p.add_argument("--claims", required=True, help="YAML with study.claims (a study preset)")
    p.add_argument("--quick", type=Path, default=None, help="the quick variant's report")
    a = p.parse_args(argv)
    summary = _load(a.report)
    claims = claims_from_file(a.claims)
    print(markdown(render(judge_summary(summary, claims))))
    if a.quick is not None:
        print(quick_agreement(summary, _load(a.quick), claims))
    return 0


if __name__ == "__main__":
    run_script(lambda: main(sys.argv[1:]), "verdicts")
