"""gansn.study.stats and gansn.study.verdicts against scipy, closed forms and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from gansn.errors import ConfigError
from gansn.study.stats import (
    Published,
    detectable_difference,
    holm,
    summarize,
    welch,
)
from gansn.study.verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    SUPPORTED,
    Claim,
    judge,
    judge_summary,
    parse_claims,
)


def test_summary_ci_is_scipys_t_interval():
    x = [3.1, 4.7, 2.2, 5.9, 4.4]
    s = summarize(x)
    lo, hi = sst.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sst.sem(x))
    assert s.mean == pytest.approx(np.mean(x)) and s.std == pytest.approx(np.std(x, ddof=1))
    assert (s.low, s.high) == pytest.approx((lo, hi))
    one = summarize([2.0, float("nan")])
    assert one.n == 1 and one.low is None and one.std is None
    assert summarize([float("inf")]) is None


def test_welch_matches_scipy_and_its_interval():
    a, b = [10.0, 12.5, 9.1, 11.8], [7.2, 8.9, 6.1, 9.9, 5.0]
    t = welch(a, b)
    ref = sst.ttest_ind(a, b, equal_var=False)
    assert t.p == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (t.low, t.high) == pytest.approx((lo, hi))
    assert t.diff == pytest.approx(np.mean(a) - np.mean(b))
    # constant groups: the difference is known exactly
    assert welch([8.0, 8.0], [8.0, 8.0]).p == 1.0
    assert welch([8.0, 8.0], [5.0, 5.0]).p == 0.0
    assert welch([1.0], [2.0, 3.0]).p is None  # one seed: no test


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.9, 0.3]) == pytest.approx([0.9, 0.6])  # 2 * 0.3, then max(0.6, 0.9)
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 * 0.8 capped at 1, monotone


def test_detectable_difference_has_the_stated_power_in_simulation():
    rng = np.random.default_rng(0)
    n, sd, alpha = 5, 2.0, 0.05
    delta = detectable_difference(sd, n, sd, n, alpha=alpha, power=0.8)
    # equal n and sd: Welch df = 2n - 2, and the pooled-t closed form is
    # delta = (t_{1-a/2} + t_{power}) * se approximately; the exact noncentral-t value is
    # a little smaller than that normal-theory bound
    se = sd * math.sqrt(2 / n)
    rough = (sst.t.ppf(1 - alpha / 2, 2 * n - 2) + sst.t.ppf(0.8, 2 * n - 2)) * se
    assert 0.9 * rough < delta < 1.05 * rough
    a = rng.normal(delta, sd, (4000, n))
    b = rng.normal(0.0, sd, (4000, n))
    p = sst.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    assert abs((p < alpha).mean() - 0.8) < 0.035  # Welch estimates the sds: close, not exact
    assert detectable_difference(1.0, 1, 1.0, 5) is None
    assert detectable_difference(0.0, 3, 0.0, 3) is None


def test_published_se_is_converted_to_a_per_trial_std():
    ring = Published("PacGAN Table 1", 6.3, n=10, se=0.5)
    assert ring.trial_std == pytest.approx(0.5 * math.sqrt(10))
    assert ring.trial_range() == pytest.approx((6.3 - 2 * 1.5811, 6.3 + 2 * 1.5811), abs=1e-3)
    assert ring.stated == "6.3 ± 0.5 (SE, 10 trials)"
    t = ring.compare_mean([8.0, 8.0, 7.0, 8.0, 6.0])
    ref = sst.ttest_ind_from_stats(
        7.4, np.std([8, 8, 7, 8, 6], ddof=1), 5, 6.3, 0.5 * math.sqrt(10), 10, equal_var=False
    )
    assert t.p == pytest.approx(ref.pvalue)
    with pytest.raises(ValueError):
        Published("x", 1.0, n=3, se=0.1, std=0.2)


CLAIM = Claim("c", "", "spectral", ("batch", "layer", "weight"), ("fid", "recall"))
DIRS = {"fid": "min", "recall": "max"}


def _values(rng, n, shift=None):
    shift = shift or {}
    out = {}
    for norm in ("spectral", "batch", "layer", "weight"):
        for metric in ("fid", "recall"):
            mu = shift.get((norm, metric), 0.0)
            out[(norm, metric)] = (list(rng.normal(mu, 1.0, n)), 0)
    return out


def test_identical_methods_are_decided_at_most_at_rate_alpha():
    rng = np.random.default_rng(1)
    outcomes = [
        judge(CLAIM, _values(rng, 5), DIRS, power_analysis=False).verdict for _ in range(600)
    ]
    decided = np.mean([o != INCONCLUSIVE for o in outcomes])
    # Holm keeps the family-wise error <= 0.05; 600 claims: 3 sigma of MC error ~ 0.027
    assert decided <= 0.05 + 0.027
    assert SUPPORTED not in outcomes  # "every comparison supports" by chance: never here


def test_a_large_effect_is_supported_and_a_reversed_one_contradicted():
    rng = np.random.default_rng(2)
    better = {("spectral", "fid"): -6.0, ("spectral", "recall"): 6.0}
    v = judge(CLAIM, _values(rng, 5, better), DIRS)
    assert v.verdict == SUPPORTED and all(c.gain > 0 for c in v.comparisons)
    worse = {("batch", "fid"): -6.0}
    v = judge(CLAIM, _values(rng, 5, worse), DIRS)
    assert v.verdict == CONTRADICTED
    assert [c.outcome for c in v.comparisons if c.rival == "batch" and c.metric == "fid"] == [
        CONTRADICTED
    ]


def test_two_seeds_decide_almost_nothing():
    # per-seed ranges apart in the "wrong" direction was a "rival better" under the old
    # rule; Welch with 2 vs 2 and Holm over 6 comparisons leaves it inconclusive
    vals = {k: ([1.0, 2.0], 0) for k in [(n, m) for n in CLAIM.rivals for m in CLAIM.metrics]}
    vals[("spectral", "fid")] = ([2.5, 3.5], 0)
    vals[("spectral", "recall")] = ([1.2, 1.9], 0)
    v = judge(CLAIM, vals, DIRS)
    assert v.verdict == INCONCLUSIVE
    # what 2 vs 2 seeds could detect: ~6-7 seed stds (0.5-0.7 here), far above the gains
    assert all(c.detectable is not None and c.detectable > 4 for c in v.comparisons)


def test_diverged_runs_are_counted_beside_the_test():
    claim = Claim("c", "", "spectral", ("none",), ("fid",))
    vals = {("spectral", "fid"): ([10.0, 11.0, 12.0], 0), ("none", "fid"): ([50.0, 52.0], 2)}
    (c,) = judge(claim, vals, {"fid": "min"}).comparisons
    assert (c.subject_diverged, c.rival_diverged) == (0, 2) and len(c.rival_values) == 2


def test_claims_parse_and_match_a_summary_setting():
    raw = [
        {
            "id": "robust",
            "text": "SN better at F",
            "where": {"setting": "F"},
            "subject": "spectral",
            "rivals": ["batch"],
            "metrics": "metrics/fid",
        }
    ]
    (claim,) = parse_claims(raw)
    assert claim.metrics == ("metrics/fid",) and claim.where == {"setting": "F"}
    row = lambda norm, vals: {  # noqa: E731
        "norm": norm,
        "metrics": {"metrics/fid:final": {"values": vals, "diverged": []}},
    }
    summary = {
        "directions": {"metrics/fid": "min"},
        "settings": [
            {"label": "setting=C", "values": {"setting": "C"}, "rows": []},
            {
                "label": "setting=F",
                "values": {"setting": "F"},
                "rows": [row("spectral", [1.0, 1.1, 0.9, 1.2, 1.0]), row("batch", [5, 6, 5, 7, 6])],
            },
        ],
    }
    (v,) = judge_summary(summary, [claim])
    assert v.setting == "setting=F" and v.verdict == SUPPORTED
    (v,) = judge_summary(
        summary, [Claim("x", "", "spectral", ("batch",), ("m",), {"setting": "Z"})]
    )
    assert v.verdict == INCONCLUSIVE and "no setting matches" in v.note
    with pytest.raises(ConfigError, match=r"lacks rivals"):
        parse_claims([{"id": "a", "subject": "s", "metrics": ["m"]}])
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_claims([{"id": "a", "subject": "s", "rivals": "b", "metrics": "m", "rival": 1}])


def test_claims_from_a_file_that_has_none_is_one_line(tmp_path):
    from gansn.study.verdicts import claims_from_file

    (tmp_path / "p.yaml").write_text("study:\n  last_k: 3\n")
    with pytest.raises(ConfigError, match=r"p.yaml: no study.claims"):
        claims_from_file(str(tmp_path / "p.yaml"))
    with pytest.raises(ConfigError, match=r"nope.yaml: cannot read it as YAML"):
        claims_from_file(str(tmp_path / "nope.yaml"))
