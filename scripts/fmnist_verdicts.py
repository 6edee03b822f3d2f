#!/usr/bin/env python
"""Verdicts on the SNGAN paper's image claims from a Fashion-MNIST study report.

    python scripts/fmnist_verdicts.py docs/showcase/fmnist_study [--metric metrics/fid:final]

Reads ``summary.json`` of a ``gansn-report`` of ``experiment=norm_study_fmnist`` (or its
quick variant) and prints, as markdown, one verdict per claim.  The rules were written
before the study ran, so the data cannot choose them:

* **Claim 1, robustness** (SNGAN, figure 1 / table 1): at the aggressive setting, SN's D
  trains a better G than batch-, layer- and weight-normalized Ds.  Per rival and metric,
  *SN better* when SN's value is better in every seed than the rival's in every seed (the
  per-seed ranges do not overlap), *rival better* the other way round, else *overlap*.
  Reproduced: SN better than all three on every metric compared (FID and recall by
  default); not reproduced: a rival better than SN on one; else
  inconclusive.  One seed decides nothing: its outcomes are marked ``(1 seed)``.  The
  same comparison at the conservative setting is printed for context.
* **Claim 2, spectra** (SNGAN, figure 2): SN keeps D's singular value spectra broader than
  weight norm.  Breadth: stable rank / number of singular values, averaged over D's layers
  (the report's table).  Reproduced when SN's is above weight norm's in every seed, not
  reproduced when below in every seed, else inconclusive; per setting.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from gansn.cli.args import ArgumentParser, run_script
from gansn.errors import ConfigError

RIVALS = ("batch", "layer", "weight")
SN = "spectral"


def compare(sn: list[float], rival: list[float], lower_is_better: bool) -> str:
    """``SN better`` / ``rival better`` when the per-seed ranges do not overlap, else
    ``overlap``; ``–`` without values.  With one seed on either side the outcome carries
    ``(1 seed)`` and counts for no verdict."""
    if not sn or not rival:
        return "–"
    few = " (1 seed)" if min(len(sn), len(rival)) < 2 else ""  # a direction, not a verdict
    if lower_is_better:
        sn, rival = [-v for v in sn], [-v for v in rival]
    if min(sn) > max(rival):
        return "SN better" + few
    if max(sn) < min(rival):
        return "rival better" + few
    return "overlap"


def claim_verdict(outcomes: list[str]) -> str:
    if "rival better" in outcomes:
        return "not reproduced"
    if outcomes and all(o == "SN better" for o in outcomes):
        return "reproduced"
    return "inconclusive"


def _values(setting: dict[str, Any], norm: str, metric: str) -> list[float]:
    for row in setting["rows"]:
        if row["norm"] == norm:
            stat = row["metrics"].get(metric)
            return list(stat["values"]) if stat else []
    return []


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    return ", ".join(f"{v:.3g}" for v in values)


def verdicts(summary: dict[str, Any], metrics: list[str], aggressive: str) -> str:
    settings = {s["values"].get("setting"): s for s in summary["settings"]}
    if aggressive not in settings:
        raise ConfigError(
            f"the report has no setting {aggressive!r} (it has "
            f"{', '.join(map(str, settings))}); pass --aggressive"
        )
    directions = summary.get("directions", {})
    out = ["## Claim 1: SN's D stays good at a high learning rate and momentum", ""]
    head = "| setting | metric | rival | SN, per seed | rival, per seed | outcome |"
    out += [head, "|---|---|---|---|---|---|"]
    at_aggressive = []
    for label in sorted(settings, key=lambda x: (x == aggressive, str(x))):
        s = settings[label]
        for metric in metrics:
            lower = directions.get(metric.split(":")[0]) == "min"
            sn = _values(s, SN, metric)
            for rival in RIVALS:
                theirs = _values(s, rival, metric)
                outcome = compare(sn, theirs, lower)
                if label == aggressive:
                    at_aggressive.append(outcome)
                out.append(
                    f"| {label} | {metric} | {rival} | {_fmt(sn)} | {_fmt(theirs)} | {outcome} |"
                )
    out += ["", f"**Verdict at setting {aggressive}: {claim_verdict(at_aggressive)}.**", ""]
    out += ["## Claim 2: SN keeps D's spectra broader than weight norm", ""]
    out += ["| setting | SN, per seed | weight, per seed | verdict |", "|---|---|---|---|"]
    for label, s in settings.items():
        runs = (s.get("spectra_breadth") or {}).get("runs", {})
        sn = [statistics.fmean(r) for r in runs.get(SN, [])]
        wn = [statistics.fmean(r) for r in runs.get("weight", [])]
        v = compare(sn, wn, lower_is_better=False)
        verdict = {"SN better": "reproduced", "rival better": "not reproduced"}.get(v, v)
        verdict = "inconclusive" if v == "overlap" else verdict
        out.append(f"| {label} | {_fmt(sn)} | {_fmt(wn)} | {verdict} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="fmnist_verdicts", description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, help="report folder (or its summary.json)")
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        help="summary column(s) to compare (default: metrics/fid:final, metrics/recall:final)",
    )
    p.add_argument("--aggressive", default="F", help="label of the aggressive setting")
    a = p.parse_args(argv)
    path = a.report / "summary.json" if a.report.is_dir() else a.report
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; give a gansn-report folder or summary.json")
    try:
        summary = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = f"{path}: not a report summary (gansn-report's summary.json): {err}"
        raise ConfigError(msg) from None
    if not isinstance(summary, dict) or "settings" not in summary:
        raise ConfigError(f"{path}: not a report summary (no 'settings'); give gansn-report's")
    metrics = a.metric or ["metrics/fid:final", "metrics/recall:final"]
    print(verdicts(summary, metrics, a.aggressive))
    return 0


if __name__ == "__main__":
    run_script(lambda: main(sys.argv[1:]), "fmnist_verdicts")
