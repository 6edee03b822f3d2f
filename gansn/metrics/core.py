"""The ``METRICS`` registry and the evaluation driver the trainer and ``gansn-eval`` call.

A metric is a function ``fn(ctx: EvalContext, **options) -> dict[str, float]`` registered in
``METRICS``; its keys are TensorBoard tags (``metrics/fid``, ``modes/covered``, ...).  It asks
the context for what it needs (features, statistics, labels of the real or fake samples),
and the context computes each (source, extractor) pair once per evaluation::

    @METRICS.register("my_metric")
    def my_metric(ctx, k: int = 3) -> dict[str, float]:
        real, fake = ctx.features("real"), ctx.features("fake")
        return {"metrics/my_metric": float(...)}

Entry points: :func:`evaluate` (one shot) and :class:`Evaluator` (keeps the feature
extractor and the real features between calls — what a trainer evaluating every k steps
wants).  Both return ``(results, protocol)``; the protocol records sample counts, the
feature extractor and its preprocessing, the sources and the seed, because FID and friends
are meaningless without them.

The parts live beside it and are re-exported here: the registry and what a metric declares
(:mod:`~gansn.metrics.catalog`), the per-evaluation context (:mod:`~gansn.metrics.context`)
and the built-in metrics (:mod:`~gansn.metrics.builtin`, registered when this is imported).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from gansn import schema
from gansn.errors import ConfigError

# the built-in metrics register themselves in METRICS on import; the names below are the
# public API of gansn.metrics.core (the trainer, the CLIs and the report import them here)
from gansn.metrics import builtin  # noqa: F401
from gansn.metrics.catalog import (
    METRICS,
    SIDES,
    Direction,
    MinSamples,
    TagInfo,
    describe,
    feature_tags,
    metric_mode,
    metric_tags,
    sample_count_problems,
    tag_info,
)
from gansn.metrics.context import EvalContext, _sample_shape, _source_name
from gansn.metrics.features import FEATURES, FeatureExtractor
from gansn.metrics.sources import DatasetSource, Source, StatsSource, as_source
from gansn.registry import check_options
from gansn.schema import Node, problems

__all__ = [
    "METRICS",
    "SIDES",
    "Direction",
    "EvalContext",
    "Evaluator",
    "MinSamples",
    "TagInfo",
    "check_metrics",
    "check_shapes",
    "describe",
    "evaluate",
    "feature_tags",
    "from_config",
    "metric_mode",
    "metric_tags",
    "sample_count_problems",
    "tag_info",
]

log = logging.getLogger(__name__)


def _parse(metric: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(metric, str):
        return metric, {}
    opts = dict(metric)
    if "name" not in opts:
        raise ConfigError(f"metric entry {opts} has no 'name'")
    return opts.pop("name"), opts


def check_metrics(
    metrics: Sequence[str | Mapping[str, Any]],
    counts: Mapping[str, tuple[str, int | None]] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Metric entries (names or ``{name: ..., <option>: ...}``) -> ``[(name, options)]``.

    Unknown names, misspelled options (with the valid ones), values that break a metric's
    option rules and, given ``counts`` (as :func:`sample_count_problems` takes them), too
    few samples for a metric fail here, so a command can refuse before it writes anything
    or loads data, not at the first evaluation.
    """
    parsed = [_parse(m) for m in metrics]
    for name, opts in parsed:
        fn = METRICS.get(name)
        check_options(f"metric {name!r}", fn, opts, given=("ctx",))
        rules = getattr(fn, "option_rules", Node(open=True))  # a metric without describe()
        if lines := problems(opts, rules, f"metric {name!r}: "):
            raise ConfigError(lines[0])
    if counts and (lines := sample_count_problems(parsed, counts)):
        raise ConfigError(lines[0])
    return parsed


def _count(src: Source, requested: int | None, key: str) -> tuple[str, int | None]:
    """(what sets the count, how many samples ``src`` gives for ``requested``) for
    :func:`sample_count_problems`; the source names itself when it holds fewer."""
    if isinstance(src, StatsSource):
        return _source_name(src), None  # mean and covariance only: nothing to count
    if src.length is None:
        return key, requested
    n = src.count(requested)
    if requested is not None and n == requested:
        return key, n
    return _source_name(src), n


def check_shapes(real: Source, fake: Source, extractors: Sequence[str]) -> None:
    """Refuse real and fake samples no feature space in ``extractors`` can compare.

    Raw features are the samples themselves, so both sides need one shape; points are
    never comparable with images.  A generator's shape is known only once it samples:
    :meth:`EvalContext.check_dims` catches that later.
    """
    r, f = _sample_shape(real), _sample_shape(fake)
    if r is None or f is None or r == f:
        return
    if len(r) == 1 and len(f) == 1:
        expected = f"points of the real ones' {r[0]} dimensions"
    elif len(r) == 1 or len(f) == 1:
        expected = "both points (N, D) or both images"
    elif "raw" in extractors:
        expected = "one shape for raw features (features=inception resizes images)"
    else:
        return
    raise ConfigError(
        f"{_source_name(fake)} holds samples of shape {f} and {_source_name(real)} of shape "
        f"{r}; expected {expected}"
    )


def _auto_features(real: Source) -> str:
    shape = _sample_shape(real)
    if shape is not None and len(shape) == 1:
        return "raw"
    ds = real.dataset if isinstance(real, DatasetSource) else None
    return "classifier" if getattr(ds, "num_classes", None) else "inception"


class Evaluator:
    """Evaluates fake sources against a fixed real source, reusing work between calls.

    The feature extractors (Inception weights, the classifier) and the real
    features/statistics are computed on the first call only; ``evaluator(fake)`` returns
    ``(results, protocol)``.

    metrics: names or ``{"name": ..., **options}`` dicts (an option ``features`` runs that
        metric on another extractor; its tags then get the suffix ``_<extractor>``).
    real: anything :func:`~gansn.metrics.sources.as_source` accepts — a Dataset, a
        generator module / ``sample(n)`` callable, an image folder, a ``.npz`` of samples,
        an array — or a pytorch-fid ``mu``/``sigma`` ``.npz`` (FID only); ``fake`` likewise.
    features: extractor name in ``FEATURES``, or "auto" (raw for points; classifier for a
        labelled image dataset; inception otherwise).
    feature_options: options of the default extractor, or ``{extractor: {options}}``.
    num_real: real samples to use (None = all); num_fake: fake samples to draw.
    cache_dir: where trained classifiers and real statistics are cached (None = nowhere).
    count_keys: the option names of num_real / num_fake, for the line that refuses them
        (``metrics.num_fake`` in a training config).
    """

    def __init__(
        self,
        metrics: Sequence[str | Mapping[str, Any]],
        real: Any,
        *,
        features: str = "auto",
        feature_options: Mapping[str, Any] | None = None,
        num_real: int | None = 2000,
        num_fake: int = 2000,
        batch_size: int = 100,
        device: str | torch.device = "cpu",
        cache_dir: str | Path | None = None,
        seed: int = 0,
        progress: bool = True,
        count_keys: Mapping[str, str] | None = None,
    ) -> None:
        self.real = as_source(real)
        # too few real samples (or a num_fake below a metric's minimum) fails here, before
        # a run trains for hours and then crashes at its first evaluation
        self.count_keys = dict(count_keys or {"real": "num_real", "fake": "num_fake"})
        self.metrics = check_metrics(
            metrics,
            {
                "real": _count(self.real, num_real, self.count_keys["real"]),
                "fake": (self.count_keys["fake"], num_fake),
            },
        )
        self.features = _auto_features(self.real) if features == "auto" else features
        # extractors are built at the first evaluation: a misspelled one must fail now
        for name in {self.features} | {o["features"] for _, o in self.metrics if "features" in o}:
            FEATURES.get(name)
        opts = dict(feature_options or {})
        # a flat dict configures the default extractor; {extractor: {...}} configures several
        if opts and not all(isinstance(v, Mapping) for v in opts.values()):
            opts = {self.features: opts}
        self.feature_options = opts
        self.num_real, self.num_fake = num_real, num_fake
        self.batch_size, self.device, self.seed = batch_size, device, seed
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.progress = progress
        self._extractors: dict[str, FeatureExtractor] = {}
        self._real_memo: dict[Any, Any] = {}

    def __call__(self, fake: Any) -> tuple[dict[str, float], dict[str, Any]]:
        start = time.perf_counter()
        # features are kept in memory only when a metric needs more than their statistics
        keep = any(not getattr(METRICS.get(n), "stats_only", False) for n, _ in self.metrics)
        fake = as_source(fake)
        # what the fake source holds is known only now (a .npz of fewer than num_fake)
        counts = {"fake": _count(fake, self.num_fake, self.count_keys["fake"])}
        if lines := sample_count_problems(self.metrics, counts):
            raise ConfigError(lines[0])
        check_shapes(
            self.real, fake, [self.features, *(o.get("features") for _, o in self.metrics)]
        )
        ctx = EvalContext(
            self.real,
            fake,
            features=self.features,
            feature_options=self.feature_options,
            num_real=self.num_real,
            num_fake=self.num_fake,
            batch_size=self.batch_size,
            device=self.device,
            cache_dir=self.cache_dir,
            seed=self.seed,
            keep_features=keep,
            progress=self.progress,
            extractors=self._extractors,
            real_memo=self._real_memo,
        )
        results: dict[str, float] = {}
        for name, opts in self.metrics:
            feats = opts.get("features")
            out = METRICS.get(name)(ctx, **opts)
            if feats and feats != self.features:
                # the same metric on another feature space must not overwrite the default one
                out = {f"{k}_{feats}": v for k, v in out.items()}
            results.update({k: float(v) for k, v in out.items()})
        protocol = {
            "num_real": ctx.counts.get("real"),
            "num_fake": ctx.counts.get("fake"),
            "features": self.features,
            "extractors": {k: e.describe() for k, e in ctx.extractors.items()},
            "real": self.real.describe(),
            "fake": ctx.fake.describe(),
            "metrics": [{"name": n, **o} for n, o in self.metrics],
            "seed": self.seed,
            "batch_size": self.batch_size,
            "seconds": round(time.perf_counter() - start, 3),
            **ctx.notes,
        }
        return results, protocol


def evaluate(
    metrics: Sequence[str | Mapping[str, Any]], real: Any, fake: Any, **options: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """Compute ``metrics`` of ``fake`` against ``real`` once -> (results, protocol).

    ``Evaluator(metrics, real, **options)(fake)``: see :class:`Evaluator` for the options.
    """
    return Evaluator(metrics, real, **options)(fake)


def from_config(
    cfg: Mapping[str, Any],
    real: Any,
    *,
    test_dataset: Any = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> Evaluator:
    """Build an :class:`Evaluator` from a ``conf/metrics`` node.

    real: the real Dataset (or any source); test_dataset: the held-out split, used only to
    measure the classifier's accuracy.  ``inception_weights`` and ``download`` go to the
    inception extractor, ``options`` to the default one.  Absent keys take their defaults
    (:data:`gansn.schema.METRICS`, the metrics group's keys).
    """
    cfg = schema.complete(cfg, schema.METRICS)
    src = as_source(real)
    features = cfg["features"]
    resolved = _auto_features(src) if features == "auto" else features
    options: dict[str, dict[str, Any]] = {
        "inception": {
            "weights": cfg["inception_weights"],
            "download": bool(cfg["download"]),
        },
        "classifier": {"test_dataset": test_dataset},
    }
    options.setdefault(resolved, {}).update(dict(cfg["options"] or {}))
    metrics = [m if isinstance(m, str) else dict(m) for m in cfg["list"] or []]
    return Evaluator(
        metrics,
        src,
        features=resolved,
        feature_options=options,
        num_real=cfg["num_real"],
        num_fake=int(cfg["num_fake"]),
        batch_size=int(cfg["batch_size"]),
        device=device,
        cache_dir=cfg["cache_dir"],
        seed=seed,
        progress=progress,
        count_keys={"real": "metrics.num_real", "fake": "metrics.num_fake"},
    )
