"""The ``METRICS`` registry and what each metric declares with it: its tags (direction and
label), its option rules and the fewest samples it is defined on.

A metric is a function ``fn(ctx: EvalContext, **options) -> dict[str, float]`` registered in
``METRICS`` under :func:`describe`; the built-in ones are in :mod:`gansn.metrics.builtin`,
registered when :mod:`gansn.metrics.core` (or ``gansn.metrics.METRICS``) is imported, which is
where to read the full registry from.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gansn.metrics.features import FEATURES
from gansn.registry import Registry
from gansn.schema import Int, Node, Rule

SIDES = ("real", "fake")

log = logging.getLogger(__name__)

METRICS: Registry[Any] = Registry("metric")

Direction = Literal["min", "max"]


@dataclass(frozen=True)
class TagInfo:
    """What one logged tag of a metric means: ``direction`` ("min"/"max": which way is
    better, None when neither is) and a ``label`` for tables and plots; ``table`` puts it in
    the study report's summary tables."""

    direction: Direction | None
    label: str
    table: bool = True


def describe(
    *,
    tags: Mapping[str, TagInfo | tuple[Direction | None, str] | tuple[Direction | None, str, bool]],
    stats_only: bool = False,
    options: Mapping[str, Rule] | None = None,
    min_samples: MinSamples | None = None,
) -> Callable[[Any], Any]:
    """Attach a metric's metadata to its function (use under ``@METRICS.register``).

    tags: every tag the metric returns -> ``TagInfo`` or ``(direction, label[, table])``.
    stats_only: the metric needs only streaming feature statistics (mean, covariance), so
        an evaluation of only such metrics keeps no feature matrix in memory.
    options: what each option's value must be (``gansn.schema`` rules), checked by
        :func:`check_metrics` before anything is evaluated.
    min_samples: the fewest real and fake samples the metric is defined on, given its
        options (see :class:`MinSamples`); checked with the rest of its rules.
    """
    info = {t: v if isinstance(v, TagInfo) else TagInfo(*v) for t, v in tags.items()}

    def attach(fn: Any) -> Any:
        fn.tags = info
        fn.stats_only = bool(stats_only)
        fn.option_rules = Node(keys=dict(options or {}), open=True)
        fn.min_samples = min_samples or MinSamples()
        return fn

    return attach


@dataclass(frozen=True)
class MinSamples:
    """The fewest samples per side a metric is defined on, as a function of its options.

    real, fake: a count, or ``options -> count`` (the options with the metric's defaults
    filled in); why: the reason, formatted with the options (``"k_pr={k_pr} neighbours"``).
    Below it the metric would fail deep inside numpy (a covariance of one sample, a k-th
    neighbour that does not exist); :func:`sample_count_problems` refuses it up front.
    """

    real: int | Callable[[Mapping[str, Any]], int] = 1
    fake: int | Callable[[Mapping[str, Any]], int] = 1
    why: str = ""

    def needs(self, side: str, options: Mapping[str, Any]) -> int:
        n = getattr(self, side)
        return int(n(options) if callable(n) else n)

    def reason(self, options: Mapping[str, Any]) -> str:
        return self.why.format(**options)


def _with_defaults(fn: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """A metric's options with the defaults of its signature filled in."""
    defaults = {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **options}


def sample_count_problems(
    metrics: Sequence[tuple[str, Mapping[str, Any]]],
    counts: Mapping[str, tuple[str, int | None]],
) -> list[str]:
    """One line per metric that ``counts`` gives too few samples (empty: all fine).

    counts: side ("real"/"fake") -> (what the count is, the count): a key that set it
    (``"num_fake"``: the line reads as that key's rule) or a source that holds only that
    many (``"x.npz"``); a count of None (not known yet) is not checked.
    """
    out = []
    for name, opts in metrics:
        fn = METRICS.get(name)
        rule = getattr(fn, "min_samples", None)
        if rule is None:  # a plugin metric without describe()
            continue
        full = _with_defaults(fn, opts)
        for side in SIDES:
            what, n = counts.get(side, ("", None))
            need = rule.needs(side, full)
            if n is None or n >= need:
                continue
            why = f" ({rule.reason(full)})" if rule.why else ""
            if what.startswith(("num_", "metrics.num_")):
                line = Int(need).problem(what, n)
            else:
                noun = "sample" if n == 1 else "samples"
                line = f"{what} holds {n} {side} {noun}, fewer than the {need} it needs"
            out.append(f"metric {name!r}: {line}{why}")
    return out


def metric_tags() -> dict[str, TagInfo]:
    """Every tag of every registered metric, in registration order (plugins included)."""
    out: dict[str, TagInfo] = {}
    for _, fn in METRICS.entries():
        out.update(getattr(fn, "tags", {}))
    return out


def feature_tags() -> set[str]:
    """Tags of the registered metrics that are computed in a feature space: those whose
    function takes ``features`` (FID, KID, PRDC, ...); mode counts and the IS do not.  Their
    numbers mean nothing without the feature space's name, so reports and TensorBoard add it."""
    return {
        tag
        for _, fn in METRICS.entries()
        if "features" in inspect.signature(fn).parameters
        for tag in getattr(fn, "tags", {})
    }


def tag_info(tag: str) -> TagInfo | None:
    """The metadata of a logged tag; a ``_<extractor>`` suffix (a metric run on another
    feature space, e.g. ``metrics/fid_inception``) maps to its base tag."""
    tags = metric_tags()
    if tag in tags:
        return tags[tag]
    base, _, suffix = tag.rpartition("_")
    if base in tags and suffix in FEATURES:
        return tags[base]
    return None


def metric_mode(tag: str) -> Direction:
    """ "max" or "min": how ``best`` compares values of ``tag``; a tag without a declared
    direction (a plugin's) is minimized, with the loss-like default."""
    info = tag_info(tag)
    return "max" if info is not None and info.direction == "max" else "min"
