"""Verdicts on a study's declared claims: a stated test over seeds, corrected within a claim.

A study preset declares what the paper claims, before the data exist::

    study:
      last_k: 3                     # a run's final score: mean of its last 3 evaluations
      claims:
        - id: robust_at_F
          text: SN's D trains a better G than batch, layer and weight norm at setting F
          where: {setting: F}       # the table (setting) the claim is about
          subject: spectral         # the row claimed better ...
          rivals: [batch, layer, weight]   # ... than each of these
          metrics: [metrics/fid, metrics/recall]  # "better" by each metric's direction

The rule, fixed in code and tested on constructed data (:func:`judge`):

* one comparison per (rival, metric): Welch's two-sided t test of the per-seed final scores
  (:func:`gansn.study.stats.welch`), effect = subject minus rival, oriented so that a
  positive ``gain`` means the subject is better;
* Holm's correction over all comparisons of the claim at family-wise level ``alpha``;
* a comparison *supports* when its adjusted p <= alpha and the gain is positive,
  *contradicts* when adjusted p <= alpha and the gain is negative, else *inconclusive*;
* the claim is **supported** when every comparison supports, **contradicted** when any
  contradicts, else **inconclusive**.  With identical methods the claim is decided (either
  way) at most at rate alpha, since Holm bounds the family-wise error rate.

Runs that diverged (NaN/Inf) have no score: they are counted beside each comparison and
left out of its test, which then says so.  Each comparison also states the smallest true
difference its seed counts could detect with 80 % power at the strictest Holm level
(alpha / m), from the observed spreads: a difference below it going undetected is no
evidence of its absence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gansn.errors import ConfigError
from gansn.study.stats import (
    ALPHA,
    LEVEL,
    POWER,
    Test,
    detectable_difference,
    holm,
    sample_std,
    welch,
)

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"
# A metric that no logged tag carries but the report computes from checkpoints.
BREADTH = "spectra/breadth"


@dataclass(frozen=True)
class Claim:
    """One declared claim: ``subject`` better than each of ``rivals`` on each metric, in the
    setting whose values match ``where``."""

    id: str
    text: str
    subject: str
    rivals: tuple[str, ...]
    metrics: tuple[str, ...]
    where: dict[str, Any] = field(default_factory=dict)
    score: str = "final"
    direction: str = "better"  # "worse": the subject is claimed worse than each rival


def parse_claims(raw: Any, source: str = "study.claims") -> list[Claim]:
    """Claims from a preset's ``study.claims`` list; one :class:`ConfigError` line for the
    first malformed entry."""
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ConfigError(f"{source} must be a list of claims, got {type(raw).__name__}")
    out = []
    need = ("id", "subject", "rivals", "metrics")
    for i, c in enumerate(raw):
        where = f"{source}[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(need)}")
        missing = [k for k in need if k not in c]
        if missing:
            raise ConfigError(f"{where} lacks {', '.join(missing)} (a claim needs {need})")
        unknown = set(c) - {*need, "text", "where", "score", "direction"}
        if unknown:
            raise ConfigError(f"{where} has unknown keys {sorted(unknown)}")
        rivals, metrics = c["rivals"], c["metrics"]
        rivals = [rivals] if isinstance(rivals, str) else list(rivals)
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if not rivals or not metrics:
            raise ConfigError(f"{where}: rivals and metrics must not be empty")
        score = c.get("score", "final")
        if score not in ("final", "last", "best"):
            raise ConfigError(f"{where}.score must be final, last or best, got {score!r}")
        direction = c.get("direction", "better")
        if direction not in ("better", "worse"):
            raise ConfigError(f"{where}.direction must be better or worse, got {direction!r}")
        out.append(
            Claim(
                id=str(c["id"]),
                text=str(c.get("text", "")),
                subject=str(c["subject"]),
                rivals=tuple(map(str, rivals)),
                metrics=tuple(map(str, metrics)),
                where={str(k): v for k, v in (c.get("where") or {}).items()},
                score=score,
                direction=direction,
            )
        )
    return out


def claims_from_file(path: str) -> list[Claim]:
    """The claims of a YAML file's ``study.claims`` (a study preset) or top-level
    ``claims``; one :class:`ConfigError` line when the file cannot give them."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"--claims {path}: cannot read it as YAML ({err})") from None
    data = data if isinstance(data, Mapping) else {}
    raw = (data.get("study") or {}).get("claims", data.get("claims"))
    if not raw:
        raise ConfigError(f"--claims {path}: no study.claims (or claims) list in it")
    return parse_claims(raw, f"{path}: study.claims")


@dataclass(frozen=True)
class Comparison:
    """Subject vs one rival on one metric."""

    rival: str
    metric: str
    subject_values: tuple[float, ...]
    rival_values: tuple[float, ...]
    subject_diverged: int
    rival_diverged: int
    gain: float | None  # subject minus rival, signed so that > 0 goes the claimed way
    low: float | None  # CI of the gain (level LEVEL)
    high: float | None
    p: float | None  # Welch, two-sided, unadjusted
    p_holm: float | None
    detectable: float | None  # smallest |difference| detectable at 80 % power, alpha/m
    outcome: str


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    setting: str | None  # the setting's label the claim was tested in (None: not found)
    comparisons: tuple[Comparison, ...]
    verdict: str
    note: str = ""


def _oriented(test: Test, lower_is_better: bool) -> tuple[float, float | None, float | None]:
    """The subject's gain over the rival and its CI, positive = subject better."""
    if not lower_is_better:
        return test.diff, test.low, test.high
    low, high = test.low, test.high
    return -test.diff, None if high is None else -high, None if low is None else -low


def judge(
    claim: Claim,
    values: Mapping[tuple[str, str], tuple[Sequence[float], int]],
    directions: Mapping[str, str],
    alpha: float = ALPHA,
    setting: str | None = None,
    power_analysis: bool = True,
) -> Verdict:
    """Test ``claim`` on per-seed scores (``power_analysis=False`` skips the detectable
    difference, the slow part, for simulations of the rule).

    ``values[(norm, metric)] = (finite per-seed scores, number of diverged runs)``;
    ``directions[metric]`` is ``"min"`` or ``"max"`` (which way is better)."""
    planned = [(r, m) for m in claim.metrics for r in claim.rivals]
    tests: list[tuple[str, str, Sequence[float], Sequence[float], int, int, Test | None]] = []
    for rival, metric in planned:
        a, da = values.get((claim.subject, metric), ((), 0))
        b, db = values.get((rival, metric), ((), 0))
        t = welch(list(a), list(b)) if a and b else None
        tests.append((rival, metric, a, b, da, db, t))
    m = sum(1 for *_, t in tests if t is not None and t.p is not None)
    adjusted = holm([t.p if t is not None else None for *_, t in tests])
    comps = []
    for (rival, metric, a, b, da, db, t), p_adj in zip(tests, adjusted):
        # gain > 0 means the data go the claimed way: "worse" flips the metric's direction
        lower = (directions.get(metric) == "min") != (claim.direction == "worse")
        if t is None:
            comps.append(
                Comparison(
                    rival,
                    metric,
                    tuple(a),
                    tuple(b),
                    da,
                    db,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    INCONCLUSIVE,
                )
            )
            continue
        gain, low, high = _oriented(t, lower)
        sd = [sample_std(x) for x in (a, b)]
        det = (
            detectable_difference(sd[0], len(a), sd[1], len(b), alpha / max(m, 1), POWER)
            if power_analysis
            else None
        )
        outcome = INCONCLUSIVE
        if p_adj is not None and p_adj <= alpha and gain != 0:
            outcome = SUPPORTED if gain > 0 else CONTRADICTED
        comps.append(
            Comparison(
                rival, metric, tuple(a), tuple(b), da, db, gain, low, high, t.p, p_adj, det, outcome
            )
        )
    outcomes = [c.outcome for c in comps]
    if CONTRADICTED in outcomes:
        verdict = CONTRADICTED
    elif outcomes and all(o == SUPPORTED for o in outcomes):
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Verdict(claim, setting, tuple(comps), verdict)


def _matches(setting: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    vals = {k.removesuffix(".name"): v for k, v in (setting.get("values") or {}).items()}
    return all(str(vals.get(k.removesuffix(".name"))) == str(v) for k, v in where.items())


def summary_values(
    setting: Mapping[str, Any], metric: str, score: str = "final"
) -> dict[tuple[str, str], tuple[list[float], int]]:
    """``{(norm, metric): (finite per-seed scores, diverged count)}`` of one setting of a
    report summary (``summary.json``'s ``settings[i]``)."""
    out: dict[tuple[str, str], tuple[list[float], int]] = {}
    if metric == BREADTH:
        runs = (setting.get("spectra_breadth") or {}).get("runs") or {}
        for norm, per_run in runs.items():
            means = [math.fsum(r) / len(r) for r in per_run if r]
            out[(norm, metric)] = ([v for v in means if math.isfinite(v)], 0)
        return out
    for row in setting.get("rows", []):
        stat = (row.get("metrics") or {}).get(f"{metric}:{score}")
        if stat:
            out[(row["norm"], metric)] = (list(stat["values"]), len(stat.get("diverged") or ()))
    return out


def judge_summary(
    summary: Mapping[str, Any], claims: Sequence[Claim], alpha: float = ALPHA
) -> list[Verdict]:
    """Every claim judged on the setting of ``summary`` it names (a report's summary.json)."""
    directions = dict(summary.get("directions") or {})
    directions.setdefault(BREADTH, "max")
    out = []
    for claim in claims:
        found = [s for s in summary.get("settings", []) if _matches(s, claim.where)]
        if len(found) != 1:
            why = "no setting matches" if not found else f"{len(found)} settings match"
            out.append(
                Verdict(claim, None, (), INCONCLUSIVE, f"not tested: {why} where={claim.where}")
            )
            continue
        s = found[0]
        values: dict[tuple[str, str], tuple[list[float], int]] = {}
        for metric in claim.metrics:
            values.update(summary_values(s, metric, claim.score))
        v = judge(claim, values, directions, alpha, setting=s.get("label"))
        if BREADTH in claim.metrics and not any(k[1] == BREADTH for k in values):
            v = Verdict(
                claim,
                v.setting,
                v.comparisons,
                v.verdict,
                "spectra breadth needs the runs' checkpoints, which this report did not read",
            )
        out.append(v)
    return out


def _g(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _p(x: float | None) -> str:
    if x is None:
        return "–"
    return "< 0.001" if x < 0.001 else f"{x:.3f}"


def render(verdicts: Sequence[Verdict], alpha: float = ALPHA) -> list[tuple[str, Any]]:
    """Document blocks (``("heading"|"para"|"table", ...)``) for a report's verdict section."""
    blocks: list[tuple[str, Any]] = [
        (
            "para",
            f"Each claim is declared in the study preset; its text says when it was fixed. Per"
            f" rival and metric: Welch's two-sided t test of the per-seed final scores; effect"
            f" = the subject's gain over the rival (positive = the way the claim says) with "
            f"its {LEVEL:.0%} CI; p Holm-adjusted over the claim's comparisons (family-wise "
            f"alpha {alpha}); supports / contradicts when the adjusted p <= {alpha}, else "
            f"inconclusive. Claim: supported when every comparison supports, contradicted when"
            f" any contradicts. 'Detectable' is the smallest true difference these seeds "
            f"detect with {POWER:.0%} power at alpha/m, from the observed spreads. Diverged "
            f"runs are counted and left out of the test.",
        )
    ]
    for v in verdicts:
        c = v.claim
        head = f"{c.id}: {v.verdict.upper()}"
        blocks.append(("heading", head))
        text = c.text or f"{c.subject} {c.direction} than {', '.join(c.rivals)}"
        where = ", ".join(f"{k}={val}" for k, val in c.where.items()) or "all runs"
        blocks.append(("para", f"Claim: {text} ({where}; score: {c.score})."))
        if v.note:
            blocks.append(("para", v.note))
        rows = []
        for k in v.comparisons:
            div = ""
            if k.subject_diverged or k.rival_diverged:
                div = f"{k.subject_diverged} / {k.rival_diverged}"
            rows.append(
                [
                    k.metric,
                    k.rival,
                    f"{len(k.subject_values)} / {len(k.rival_values)}",
                    div or "0 / 0",
                    _g(k.gain) + (f" [{_g(k.low)}, {_g(k.high)}]" if k.low is not None else ""),
                    _p(k.p),
                    _p(k.p_holm),
                    _g(k.detectable),
                    k.outcome,
                ]
            )
        if rows:
            blocks.append(
                (
                    "table",
                    (
                        [
                            "metric",
                            "rival",
                            "seeds",
                            "diverged",
                            "gain [95 % CI]",
                            "p",
                            "p (Holm)",
                            "detectable",
                            "outcome",
                        ],
                        rows,
                    ),
                )
            )
    return blocks


def as_dict(v: Verdict) -> dict[str, Any]:
    """A verdict for summary.json."""
    return {
        "id": v.claim.id,
        "text": v.claim.text,
        "where": v.claim.where,
        "subject": v.claim.subject,
        "direction": v.claim.direction,
        "setting": v.setting,
        "verdict": v.verdict,
        "note": v.note,
        "comparisons": [
            {
                "rival": k.rival,
                "metric": k.metric,
                "subject_values": list(k.subject_values),
                "rival_values": list(k.rival_values),
                "subject_diverged": k.subject_diverged,
                "rival_diverged": k.rival_diverged,
                "gain": k.gain,
                "ci": [k.low, k.high],
                "p": k.p,
                "p_holm": k.p_holm,
                "detectable": k.detectable,
                "outcome": k.outcome,
            }
            for k in v.comparisons
        ],
    }
