"""Statistics over seeds: confidence intervals, Welch's test, Holm's correction, power.

Everything a study's tables and verdicts state about the spread of a number lives here, so
a script never re-derives it.  Seeds are the unit of replication: one run gives one score
per metric (the mean of its last k evaluations, :func:`run_score`).

* :func:`run_score` -- a run's score of one logged series: the mean of its last k values,
  :class:`Diverged` when one of them is NaN/Inf.
* :func:`summarize` -- mean, sample std and a two-sided Student-t confidence interval of the
  mean (``mean ± t_{n-1} · s / sqrt(n)``), the method the tables name.
* :func:`welch` -- Welch's unequal-variance t test of two groups of seeds, with the CI of the
  difference of means; also from published summary statistics (:func:`welch_summary`).
* :func:`holm` -- Holm's step-down adjustment of the p values of one claim's comparisons.
* :func:`detectable_difference` -- the smallest true difference of means that a Welch test
  at these seed counts and spreads detects with the stated power (noncentral t).
* :class:`Published` -- a published number as published: mean ± SE over n trials, or ± std;
  the per-trial std a single run is compared with is ``SE · sqrt(n)``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy import optimize
from scipy import stats as sst

from gansn.schema import STUDY, defaults

LEVEL = 0.95  # confidence level of every interval in a report
ALPHA = 0.05  # family-wise error rate of one claim's tests
POWER = 0.80  # power at which a detectable difference is stated


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof 1) and the Student-t CI of the mean of ``values``.

    ``low``/``high`` are None for one value (no spread to estimate) and equal the mean when
    every value is the same."""

    mean: float
    std: float | None
    n: int
    low: float | None
    high: float | None
    values: tuple[float, ...]
    level: float = LEVEL


def summarize(values: Iterable[float], level: float = LEVEL) -> Summary | None:
    """The :class:`Summary` of the finite ``values``; None when there is none.

    A non-finite value has no place in a mean; callers count such runs as diverged
    (:class:`Diverged`) before they get here."""
    vals = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    if not vals:
        return None
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return Summary(mean, None, 1, None, None, vals, level)
    std = statistics.stdev(vals)
    half = sst.t.ppf(0.5 + level / 2, len(vals) - 1) * std / math.sqrt(len(vals))
    return Summary(mean, std, len(vals), mean - half, mean + half, vals, level)


@dataclass(frozen=True)
class Diverged:
    """A run whose score is not a number: its metric (or its loss) went NaN/Inf at ``step``."""

    step: int | None


Score = float | Diverged


# Evaluations averaged into a run's "final" score: one noisy last evaluation must not decide
# a comparison.  Fixed before the studies it scores were re-read (issue 21); declared with
# the config key a study preset sets it by (study.last_k).
LAST_K = int(defaults(STUDY)["last_k"])


def run_score(points: Sequence[tuple[int, float]], k: int = LAST_K) -> Score | None:
    """A run's final score of one series: the mean of its last ``k`` values.

    :class:`Diverged` at the first non-finite one among them (a NaN FID, a mode KL with no
    high-quality sample): an earlier finite value is never reported in its place."""
    if not points:
        return None
    tail = points[-k:]
    bad = [step for step, v in tail if not math.isfinite(v)]
    if bad:
        return Diverged(bad[0])
    return statistics.fmean(v for _, v in tail)


def sample_std(values: Sequence[float]) -> float:
    """The sample std (ddof 1) of ``values``; 0 for fewer than two (no spread to see)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class Test:
    """Welch's test of ``mean(a) - mean(b)``: the difference, its CI, the two-sided p value
    and the Welch-Satterthwaite degrees of freedom.  ``p`` is None when it cannot be
    computed (fewer than 2 values on a side)."""

    diff: float
    low: float | None
    high: float | None
    p: float | None
    df: float | None
    se: float | None


def welch_summary(
    m1: float, s1: float, n1: int, m2: float, s2: float, n2: int, level: float = LEVEL
) -> Test:
    """Welch's test from summary statistics: means, sample stds and sizes of two groups."""
    diff = m1 - m2
    if n1 < 2 or n2 < 2:
        return Test(diff, None, None, None, None, None)
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        # Both groups constant: the difference is exactly known; any nonzero one is certain.
        return Test(diff, diff, diff, 1.0 if diff == 0 else 0.0, math.inf, 0.0)
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    t = diff / se
    p = float(2 * sst.t.sf(abs(t), df))
    half = float(sst.t.ppf(0.5 + level / 2, df)) * se
    return Test(diff, diff - half, diff + half, p, df, se)


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Test:
    """Welch's unequal-variance t test of two groups of per-seed scores."""
    return welch_summary(
        statistics.fmean(a),
        sample_std(a),
        len(a),
        statistics.fmean(b),
        sample_std(b),
        len(b),
        level=level,
    )


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p values (None stays None and does not count as a test).

    Reject comparison i at family-wise level alpha when its adjusted p <= alpha; the family
    is one claim's comparisons."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m, out, running = len(tested), list(pvalues), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def detectable_difference(
    s1: float, n1: int, s2: float, n2: int, alpha: float = ALPHA, power: float = POWER
) -> float | None:
    """The smallest true |mean difference| a two-sided Welch test at level ``alpha``
    detects with probability ``power``, given group stds ``s1``, ``s2`` and sizes.

    Solves ``P(|T| > t_crit) = power`` for T noncentral t with the Welch degrees of
    freedom and noncentrality ``delta / se``.  None with fewer than 2 seeds on a side or no
    spread at all (the observed stds are then no estimate of the noise)."""
    if n1 < 2 or n2 < 2:
        return None
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return None
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    crit = sst.t.ppf(1 - alpha / 2, df)

    def gap(nc: float) -> float:
        g = sst.nct.sf(crit, df, nc) + sst.nct.cdf(-crit, df, nc) - power
        return 1.0 if math.isnan(g) else float(g)  # scipy's nct gives NaN far in the tail

    hi = 1.0
    while gap(hi) < 0:  # power rises with the noncentrality: bracket the root
        hi *= 2
    return float(optimize.brentq(gap, 0.0, hi)) * se


@dataclass(frozen=True)
class Published:
    """A published number with the statistic it was published with.

    ``se``: standard error of the mean over ``n`` trials (PacGAN's Table 1); ``std``: the
    per-trial standard deviation.  Give one of them (or neither, for a bare number)."""

    source: str
    mean: float
    n: int
    se: float | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        if self.se is not None and self.std is not None:
            raise ValueError("give the published SE or the published std, not both")

    @property
    def trial_std(self) -> float | None:
        """Per-trial std: the published one, or ``SE · sqrt(n)``."""
        if self.std is not None:
            return self.std
        return self.se * math.sqrt(self.n) if self.se is not None else None

    @property
    def stated(self) -> str:
        """As published: ``6.3 ± 0.5 (SE, 10 trials)``."""
        if self.se is not None:
            return f"{self.mean:g} ± {self.se:g} (SE, {self.n} trials)"
        if self.std is not None:
            return f"{self.mean:g} ± {self.std:g} (std, {self.n} trials)"
        return f"{self.mean:g} ({self.n} trials)"

    def trial_range(self, k: float = 2.0) -> tuple[float, float] | None:
        """``mean ± k · per-trial std``: where one run of the published method falls
        ~95 % of the time (k = 2) if its trials are near normal."""
        s = self.trial_std
        return None if s is None else (self.mean - k * s, self.mean + k * s)

    def compare_mean(self, values: Sequence[float], level: float = LEVEL) -> Test:
        """Welch's test of ``mean(values) - published mean`` from the published summary."""
        s = self.trial_std
        if s is None:
            return Test(statistics.fmean(values) - self.mean, None, None, None, None, None)
        return welch_summary(
            statistics.fmean(values), sample_std(values), len(values), self.mean, s, self.n, level
        )
