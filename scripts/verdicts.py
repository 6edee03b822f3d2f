#!/usr/bin/env python
"""Verdicts on the SNGAN paper's image claims from a Fashion-MNIST study report.

    python scripts/fmnist_verdicts.py docs/showcase/fmnist_study [--metric metrics/fid:final]
        [--quick docs/showcase/fmnist_quick]

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
* **Quick vs full** (``--quick``): see :func:`quick_agreement`.
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


def _label(setting: dict[str, Any]) -> str:
    """A report setting's optimizer-setting label (``C``, ``F``)."""
    return str(setting["values"].get("setting"))


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


def claim1_outcomes(
    summary: dict[str, Any], metrics: list[str]
) -> dict[tuple[str, str, str], tuple[list[float], list[float], str]]:
    """``{(setting, metric, rival): (SN per seed, rival per seed, outcome)}``."""
    directions = summary.get("directions", {})
    out = {}
    for s in summary["settings"]:
        label = _label(s)
        for metric in metrics:
            lower = directions.get(metric.split(":")[0]) == "min"
            sn = _values(s, SN, metric)
            for rival in RIVALS:
                theirs = _values(s, rival, metric)
                out[(label, metric, rival)] = (sn, theirs, compare(sn, theirs, lower))
    return out


def claim2_outcomes(summary: dict[str, Any]) -> dict[str, tuple[list[float], list[float], str]]:
    """``{setting: (SN's mean breadth per seed, weight norm's, outcome)}``."""
    out = {}
    for s in summary["settings"]:
        runs = (s.get("spectra_breadth") or {}).get("runs", {})
        sn = [statistics.fmean(r) for r in runs.get(SN, [])]
        wn = [statistics.fmean(r) for r in runs.get("weight", [])]
        out[_label(s)] = (sn, wn, compare(sn, wn, lower_is_better=False))
    return out


def verdicts(summary: dict[str, Any], metrics: list[str], aggressive: str) -> str:
    labels = [_label(s) for s in summary["settings"]]
    if aggressive not in labels:
        raise ConfigError(
            f"the report has no setting {aggressive!r} (it has {', '.join(labels)}); "
            "pass --aggressive"
        )
    out = ["## Claim 1: SN's D stays good at a high learning rate and momentum", ""]
    head = "| setting | metric | rival | SN, per seed | rival, per seed | outcome |"
    out += [head, "|---|---|---|---|---|---|"]
    outcomes = claim1_outcomes(summary, metrics)
    for (label, metric, rival), (sn, theirs, outcome) in sorted(
        outcomes.items(), key=lambda kv: (kv[0][0] == aggressive, kv[0][0])
    ):
        out.append(f"| {label} | {metric} | {rival} | {_fmt(sn)} | {_fmt(theirs)} | {outcome} |")
    at_aggressive = [o for (label, _, _), (_, _, o) in outcomes.items() if label == aggressive]
    out += ["", f"**Verdict at setting {aggressive}: {claim_verdict(at_aggressive)}.**", ""]
    out += ["## Claim 2: SN keeps D's spectra broader than weight norm", ""]
    out += ["| setting | SN, per seed | weight, per seed | verdict |", "|---|---|---|---|"]
    for label, (sn, wn, v) in claim2_outcomes(summary).items():
        verdict = {"SN better": "reproduced", "rival better": "not reproduced"}.get(v, v)
        verdict = "inconclusive" if v == "overlap" else verdict
        out.append(f"| {label} | {_fmt(sn)} | {_fmt(wn)} | {verdict} |")
    return "\n".join(out)


def _direction(outcome: str) -> str:
    return outcome.removesuffix(" (1 seed)")


def _means(setting: dict[str, Any] | None, metric: str) -> dict[str, float]:
    """``{norm: mean of metric}`` of one setting (none for a setting the report lacks)."""
    rows = {r["norm"]: r["metrics"].get(metric) for r in (setting or {}).get("rows", [])}
    return {n: st["mean"] for n, st in rows.items() if st}


def quick_agreement(full: dict[str, Any], quick: dict[str, Any], metrics: list[str]) -> str:
    """Whether the quick variant keeps the full study's conclusions, by a rule fixed before
    the full study ran.

    A *conclusion* of the full study is every comparison it decides (claim 1 per setting,
    metric and rival; claim 2 per setting): ``SN better`` or ``rival better`` with >= 2
    seeds.  The quick variant keeps one when its outcome points the same way; its one seed
    counts here, as the direction it would have told a user.  It keeps the study's
    conclusions when it keeps every one.  Beside it, per setting, the Spearman rank
    correlation of the norms' mean value of the first metric (quick vs full).
    """
    from scipy.stats import spearmanr

    pairs = []
    f1, q1 = claim1_outcomes(full, metrics), claim1_outcomes(quick, metrics)
    for key, (_, _, outcome) in f1.items():
        pairs.append((" / ".join(key), outcome, q1.get(key, ([], [], "–"))[2]))
    f2, q2 = claim2_outcomes(full), claim2_outcomes(quick)
    for label, (_, _, outcome) in f2.items():
        pairs.append(
            (f"{label} / spectra breadth / weight", outcome, q2.get(label, ([], [], "–"))[2])
        )
    decided = [(k, f, q) for k, f, q in pairs if f in ("SN better", "rival better")]
    kept = [(k, f, q) for k, f, q in decided if _direction(q) == f]
    out = ["## Does the quick variant keep these conclusions?", ""]
    if decided:
        out += ["| comparison | full study | quick variant | kept |", "|---|---|---|---|"]
        out += [
            f"| {k} | {f} | {q} | {'yes' if _direction(q) == f else 'no'} |" for k, f, q in decided
        ]
        answer = "yes" if len(kept) == len(decided) else "no"
        out += [
            "",
            f"**Quick keeps the full study's conclusions: {answer}** "
            f"({len(kept)} of {len(decided)} decided comparisons point the same way).",
        ]
    else:
        out += ["**The full study decides no comparison, so the quick variant has none to keep.**"]
    out += ["", f"Rank agreement of the norms' mean {metrics[0]} (Spearman, quick vs full):", ""]
    quick_settings = {_label(s): s for s in quick["settings"]}
    for s in full["settings"]:
        label = _label(s)
        fm, qm = _means(s, metrics[0]), _means(quick_settings.get(label), metrics[0])
        common = sorted(set(fm) & set(qm))
        if len(common) < 3:
            out.append(f"- {label}: {len(common)} norms in both, too few to rank")
            continue
        rho = spearmanr([fm[n] for n in common], [qm[n] for n in common]).statistic
        out.append(f"- {label}: rho = {rho:.2f} over {len(common)} norms")
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
    p = ArgumentParser(prog="fmnist_verdicts", description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, help="report folder (or its summary.json)")
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        help="summary column(s) to compare (default: metrics/fid:final, metrics/recall:final)",
    )
    p.add_argument("--aggressive", default="F", help="label of the aggressive setting")
    p.add_argument(
        "--quick",
        type=Path,
        default=None,
        help="the quick variant's report: say whether it keeps this study's conclusions",
    )
    a = p.parse_args(argv)
    summary = _load(a.report)
    quick = _load(a.quick) if a.quick is not None else None
    metrics = a.metric or ["metrics/fid:final", "metrics/recall:final"]
    print(verdicts(summary, metrics, a.aggressive))
    if quick is not None:
        print("\n" + quick_agreement(summary, quick, metrics))
    return 0


if __name__ == "__main__":
    run_script(lambda: main(sys.argv[1:]), "fmnist_verdicts")
