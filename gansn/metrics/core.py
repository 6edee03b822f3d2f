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
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from gansn import distributed, schema
from gansn.errors import ConfigError
from gansn.metrics.features import FEATURES, FeatureExtractor, build_extractor
from gansn.metrics.fid import (
    StreamingStats,
    fid_infinity,
    frechet_distance,
    inception_score,
    kid,
    kid_subset_size,
    load_stats,
    save_stats,
)
from gansn.metrics.modes import class_modes, mixture_modes, ndb, stacked_modes
from gansn.metrics.prdc import prdc, precision_recall
from gansn.metrics.sources import DatasetSource, Source, StatsSource, as_source
from gansn.registry import Registry, check_options
from gansn.schema import Choice, Float, Int, Node, Rule, problems

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


def _sample_shape(src: Source) -> tuple[int, ...] | None:
    """Shape of one sample of a source, without drawing from a generator."""
    if isinstance(src, DatasetSource):
        shape = getattr(src.dataset, "shape", None)
        if shape is None:
            item = src.dataset[0]
            shape = tuple(
                torch.as_tensor(item[0] if isinstance(item, tuple | list) else item).shape
            )
        return tuple(shape)
    x = getattr(src, "x", None)
    if x is not None:
        return tuple(x.shape[1:])
    shape = getattr(src, "shape", None)  # an image folder knows its size from the headers
    return tuple(shape) if shape is not None else None


class EvalContext:
    """Lazily computed, memoized features / statistics of the real and fake sources."""

    def __init__(
        self,
        real: Source,
        fake: Source,
        *,
        features: str,
        feature_options: Mapping[str, Mapping[str, Any]],
        num_real: int | None,
        num_fake: int | None,
        batch_size: int,
        device: str | torch.device,
        cache_dir: Path | None,
        seed: int,
        keep_features: bool,
        progress: bool,
        extractors: dict[str, FeatureExtractor] | None = None,
        real_memo: dict[Any, Any] | None = None,
    ) -> None:
        self.real, self.fake = real, fake
        self.default_features = features
        self.feature_options = {k: dict(v) for k, v in feature_options.items()}
        self.num = {"real": num_real, "fake": num_fake}
        self.batch_size, self.device, self.cache_dir = batch_size, device, cache_dir
        self.seed, self.keep_features, self.progress = seed, keep_features, progress
        self.extractors = {} if extractors is None else extractors
        self._real_memo = {} if real_memo is None else real_memo
        self._outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._stats: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.counts: dict[str, int] = {}
        self.notes: dict[str, Any] = {}

    # --- what metrics ask for -----------------------------------------------------------------
    @property
    def real_dataset(self) -> Any:
        """The real Dataset (with .num_classes, .centers, .std, .stacked...) or None."""
        return self.real.dataset if isinstance(self.real, DatasetSource) else None

    @property
    def is_points(self) -> bool:
        shape = _sample_shape(self.real) or _sample_shape(self.fake)
        return shape is not None and len(shape) == 1

    def extractor(self, name: str | None = None) -> FeatureExtractor:
        name = name or self.default_features
        if name not in self.extractors:
            self.extractors[name] = build_extractor(
                name,
                self.feature_options.get(name),
                device=self.device,
                cache_dir=None if self.cache_dir is None else str(self.cache_dir),
                seed=self.seed,
                dataset=self.real_dataset,
                progress=self.progress,
            )
        return self.extractors[name]

    def outputs(self, which: str, name: str | None = None) -> dict[str, np.ndarray]:
        """All extractor outputs for every sample: {"features": (N, d), ["labels": ...]}."""
        name = name or self.default_features
        key = (which, name)
        if key not in self._outputs:
            self._extract(which, name, keep=True)
            self.check_dims(name)
        return self._outputs[key]

    def features(self, which: str, name: str | None = None) -> np.ndarray:
        """(N, d) float32 features of the real or fake samples."""
        return self.outputs(which, name)["features"]

    def stats(self, which: str, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mu (d,), sigma (d, d)) in float64; real statistics may come from a file/cache."""
        name = name or self.default_features
        key = (which, name)
        if key in self._stats:
            return self._stats[key]
        src = self.real if which == "real" else self.fake
        if isinstance(src, StatsSource):
            self.counts.setdefault(which, src.n)
            self._stats[key] = (src.mu, src.sigma)
            return self._stats[key]
        cache = self._stats_cache_path(which, name)
        if cache is not None and cache.is_file() and not self.keep_features:
            self._stats[key] = load_stats(cache)
            with np.load(cache) as f:
                self.counts[which] = int(f["n"]) if "n" in f else src.count(self.num[which])
            self.notes["real_stats_cache"] = str(cache)
            log.info("real statistics from cache %s", cache)
            return self._stats[key]
        self._extract(which, name, keep=self.keep_features)
        self.check_dims(name)
        if cache is not None and not cache.is_file():
            save_stats(cache, *self._stats[key], n=self.counts[which])
            self.notes["real_stats_cache"] = str(cache)
        return self._stats[key]

    def check_dims(self, name: str) -> None:
        """Refuse real and fake features of different dimensions (a generator whose samples
        are not the real ones' shape, under raw features): no metric compares them."""
        dims = {}
        for which in SIDES:
            stats = self._stats.get((which, name))
            if stats is not None:
                dims[which] = len(stats[0])
        if len(dims) == 2 and dims["real"] != dims["fake"]:
            src = {"real": self.real, "fake": self.fake}
            raise ConfigError(
                f"{name} features of {_source_name(src['fake'])} have {dims['fake']} dimensions "
                f"and those of {_source_name(src['real'])} {dims['real']}; expected samples of "
                "one shape (features=inception resizes images)"
            )

    # --- machinery ----------------------------------------------------------------------------
    def _stats_cache_path(self, which: str, name: str) -> Path | None:
        src = self.real if which == "real" else self.fake
        if (
            which != "real"
            or self.cache_dir is None
            or src.cache_key is None
            or not getattr(FEATURES.get(name), "cacheable", False)
        ):
            return None
        n = src.count(self.num["real"])
        seed = "" if n == src.length else f"-seed{self.seed}"
        tag = self.extractor(name).cache_tag
        return self.cache_dir / "stats" / f"{src.cache_key}-n{n}{seed}-{tag}.npz"

    def _extract(self, which: str, name: str, keep: bool) -> None:
        memo_key = (name, self.num["real"], self.seed)
        memo = self._real_memo.get(memo_key) if which == "real" else None
        if memo is not None and (memo[1] is not None or not keep):
            self.counts["real"], outputs, stats = memo
            if outputs is not None:
                self._outputs[(which, name)] = outputs
            self._stats[(which, name)] = stats
            return
        src = self.real if which == "real" else self.fake
        n = src.count(self.num[which])
        ext = self.extractor(name)
        acc, chunks = StreamingStats(), {}
        # closed on an error too, so a one-line error is not glued to a half-drawn bar
        with tqdm(
            total=n,
            desc=f"{name} features of {which} samples",
            unit="img",
            disable=not self.progress,
            leave=False,
        ) as bar:
            # the fake stream gets its own seed so a generator's z never mirrors the real subset
            seed = self.seed if which == "real" else self.seed + 1
            for out in self._outputs_of(which, src, n, seed, ext, bar):
                acc.update(out["features"].double().numpy())
                if keep:
                    for k, v in out.items():
                        chunks.setdefault(k, []).append(
                            v.float().numpy() if v.is_floating_point() else v.numpy()
                        )
        self.counts[which] = acc.n
        if acc.n < n:
            raise ConfigError(f"{which} source gave {acc.n} samples, {n} requested")
        outputs = {k: np.concatenate(v) for k, v in chunks.items()} if keep else None
        if outputs is not None:
            self._outputs[(which, name)] = outputs
        # one sample has no covariance; the metrics that need one declare 2 (MinSamples),
        # and the others (modes of one sample) must not fail for want of it
        one = acc.n < 2
        self._stats[(which, name)] = (
            (acc.mean, np.full((acc.dim, acc.dim), np.nan)) if one else acc.stats()
        )
        if which == "real":
            self._real_memo[memo_key] = (acc.n, outputs, self._stats[(which, name)])

    def _outputs_of(
        self, which: str, src: Source, n: int, seed: int, ext: Any, bar: Any
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Extractor outputs batch by batch, in the order one process computes them.

        Under torchrun a generator's fake samples are shared out: rank r generates and
        extracts batches r, r + world_size, ..., and every rank gets all of them back
        (gathered), so each computes the metrics on the same full set.
        """
        rank = distributed.current()
        if not (which == "fake" and rank.distributed and getattr(src, "shardable", False)):
            for x in src.batches(n, self.batch_size, seed):
                bar.update(len(x))
                yield {k: v.detach().cpu() for k, v in ext(x).items()}
            return
        own = []
        for x in src.batches(n, self.batch_size, seed, shard=(rank.rank, rank.world_size)):
            bar.update(len(x) * rank.world_size)
            own.append({k: v.detach().cpu() for k, v in ext(x).items()})
        shares = distributed.all_gather_object(own)
        for i in range(sum(len(s) for s in shares)):
            yield shares[i % rank.world_size][i // rank.world_size]


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


def _source_name(src: Source) -> str:
    """How a line names a source: its file or folder, its dataset, else its type."""
    d = src.describe()
    if "path" in d:
        return str(d["path"])
    if d.get("type") == "dataset":
        return f"dataset {d.get('name') or '?'} ({d.get('split')} split)"
    if d.get("type") == "generator":
        return f"generator {d.get('name')}"
    return str(d.get("name") or d.get("type"))


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


# --- the registered metrics ------------------------------------------------------------------


@METRICS.register("fid")
@describe(
    tags={"metrics/fid": ("min", "FID")},
    stats_only=True,
    min_samples=MinSamples(2, 2, "a covariance needs at least 2 samples per side"),
)
def fid_metric(ctx: EvalContext, features: str | None = None) -> dict[str, float]:
    """Fréchet distance of the feature statistics -> ``metrics/fid``.

    Fewer samples than feature dimensions (N < d) is logged and noted in the protocol's
    ``warnings``: the covariance is then singular and FID biased upward, comparable only
    at equal N.
    """
    real, fake = ctx.stats("real", features), ctx.stats("fake", features)
    dim = len(real[0])
    short = {
        which: n
        for which in ("real", "fake")
        if (n := ctx.counts.get(which)) is not None and n < dim
    }
    if short:
        counts = " and ".join(f"{n} {which}" for which, n in short.items())
        _warn(
            ctx,
            f"FID on {features or ctx.default_features} features from {counts} samples, fewer "
            f"than the {dim} feature dimensions: the covariance is singular and FID is biased "
            f"upward; compare FIDs only at equal N, or use N >= {dim}",
        )
    return {"metrics/fid": frechet_distance(*real, *fake)}


def _warn(ctx: EvalContext, message: str) -> None:
    """A caveat on a number: logged, and kept with it in the protocol (``warnings``)."""
    notes = ctx.notes.setdefault("warnings", [])
    if message not in notes:
        log.warning("%s", message)
        notes.append(message)


@METRICS.register("fid_inf")
@describe(
    tags={"metrics/fid_inf": ("min", "FID∞", False)},
    options={"num_points": Int(2), "min_n": Int(2, null=True)},
    # a line through FIDs at two or more fake subset sizes, from min_n up to all of them
    min_samples=MinSamples(
        2,
        lambda o: (o["min_n"] or 2) + 1,
        "a covariance needs 2 samples, and the fit FIDs at subset sizes min_n (default 2) "
        "to N, so N > min_n",
    ),
)
def fid_inf_metric(
    ctx: EvalContext, features: str | None = None, num_points: int = 15, min_n: int | None = None
) -> dict[str, float]:
    """FID∞ (Chong & Forsyth 2020) -> ``metrics/fid_inf``; needs num_fake ≫ d to be stable."""
    value, info = fid_infinity(
        ctx.stats("real", features),
        ctx.features("fake", features),
        num_points=num_points,
        min_n=min_n,
        seed=ctx.seed,
    )
    ctx.notes["fid_inf_points"] = info
    return {"metrics/fid_inf": value}


@METRICS.register("is")
@describe(
    tags={"metrics/is": ("max", "IS"), "metrics/is_std": (None, "IS std", False)},
    options={"splits": Int(1)},
    min_samples=MinSamples(1, lambda o: o["splits"], "one fake sample per split at least"),
)
def is_metric(ctx: EvalContext, splits: int = 10) -> dict[str, float]:
    """Inception Score of the fake samples (10 splits, mean ± std over splits, as the TF
    code of Salimans et al.) from the FID Inception's 1008-way logits ->
    ``metrics/is``, ``metrics/is_std``."""
    ext = ctx.extractor("inception")
    if not ext.info.get("has_classifier"):
        raise ConfigError(
            f"the Inception Score needs the FID Inception's 1008-way classifier, and the "
            f"weights loaded from {ext.info.get('weights')} ({ext.info.get('format')}) carry "
            "none (the TorchScript port ships only the pool3 features); pass pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth as metrics.inception_weights=<file>"
        )
    mean, std = inception_score(ctx.outputs("fake", "inception")["logits"], splits)
    return {"metrics/is": mean, "metrics/is_std": std}


@METRICS.register("kid")
@describe(
    tags={"metrics/kid": ("min", "KID"), "metrics/kid_std": (None, "KID std", False)},
    # unbiased MMD² leaves out each sample's kernel with itself: two per set at least
    options={"num_subsets": Int(1), "subset_size": Int(2)},
    min_samples=MinSamples(2, 2, "unbiased MMD² needs at least 2 samples per side"),
)
def kid_metric(
    ctx: EvalContext, features: str | None = None, num_subsets: int = 100, subset_size: int = 1000
) -> dict[str, float]:
    """KID mean/std over subsets -> ``metrics/kid``, ``metrics/kid_std``.

    The subset size used (``subset_size``, or the smaller sample count) goes to the
    protocol under ``kid`` (``kid_<features>`` for another extractor); when no two subsets
    can differ, ``kid_std`` is NaN and the protocol says why (see :func:`~.fid.kid`).
    """
    real, fake = ctx.features("real", features), ctx.features("fake", features)
    used = kid_subset_size(len(real), len(fake), subset_size)
    whole = used == len(real) == len(fake)
    note: dict[str, Any] = {"subset_size": used, "num_subsets": num_subsets}
    if used < subset_size:
        note["requested_subset_size"] = subset_size
        _warn(
            ctx,
            f"KID: {len(real)} real and {len(fake)} fake samples, fewer than "
            f"subset_size={subset_size}; subsets of {used} are used"
            + (
                ", i.e. all samples, so KID is their MMD² and has no spread (kid_std NaN); "
                "draw more samples than the subset size for a std"
                if whole
                else ""
            ),
        )
    mean, std = kid(real, fake, num_subsets=num_subsets, subset_size=subset_size, seed=ctx.seed)
    if math.isnan(std):
        note["std"] = "undefined: " + ("every subset is all samples" if whole else "one subset")
    ctx.notes["kid" if features is None else f"kid_{features}"] = note
    return {"metrics/kid": mean, "metrics/kid_std": std}


@METRICS.register("prdc")
@describe(
    tags={
        "metrics/precision": ("max", "Precision"),
        "metrics/recall": ("max", "Recall"),
        "metrics/density": ("max", "Density"),
        "metrics/coverage": ("max", "Coverage"),
    },
    options={"k_pr": Int(1), "k_dc": Int(1)},
    # a sample's k-th nearest neighbour among the others: real balls for P/R and D/C, fake
    # balls for recall
    min_samples=MinSamples(
        lambda o: max(o["k_pr"], o["k_dc"]) + 1,
        lambda o: o["k_pr"] + 1,
        "the k-th nearest neighbour needs k + 1 samples: k_pr={k_pr} on both sides, "
        "k_dc={k_dc} on the real one",
    ),
)
def prdc_metric(
    ctx: EvalContext, features: str | None = None, k_pr: int = 3, k_dc: int = 5
) -> dict[str, float]:
    """Precision, recall (k_pr), density, coverage (k_dc) -> ``metrics/<name>``, in one pass."""
    out = prdc(ctx.features("real", features), ctx.features("fake", features), k_pr, k_dc)
    return {f"metrics/{k}": v for k, v in out.items()}


@METRICS.register("pr")
@describe(
    tags={
        "metrics/precision": ("max", "Precision"),
        "metrics/recall": ("max", "Recall"),
    },
    options={"k": Int(1)},
    min_samples=MinSamples(
        lambda o: o["k"] + 1,
        lambda o: o["k"] + 1,
        "the k-th nearest neighbour needs k + 1 samples per side, k={k}",
    ),
)
def pr_metric(ctx: EvalContext, features: str | None = None, k: int = 3) -> dict[str, float]:
    """Precision and recall only -> ``metrics/precision``, ``metrics/recall``."""
    out = precision_recall(ctx.features("real", features), ctx.features("fake", features), k)
    return {f"metrics/{k_}": v for k_, v in out.items()}


@METRICS.register("mixture_modes")
@describe(
    tags={
        "modes/covered": ("max", "Modes"),
        "modes/covered_frac": ("max", "Modes (fraction)", False),
        "modes/high_quality": ("max", "HQ samples"),
        "modes/kl": ("min", "Mode KL"),
    },
    options={
        "threshold": Float(gt=0),
        "std": Float(gt=0, null=True),
        "convention": Choice(("veegan", "fifth_of_uniform")),
        "min_count": Int(1, null=True),
    },
)
def mixture_modes_metric(
    ctx: EvalContext,
    centers: Any = None,
    std: float | None = None,
    threshold: float = 3.0,
    convention: str = "veegan",
    min_count: int | None = None,
) -> dict[str, float]:
    """2-D mixture modes -> ``modes/covered``, ``modes/covered_frac``, ``modes/high_quality``,
    ``modes/kl``; centers/std default to the real dataset's ``.centers`` / ``.std``."""
    ds = ctx.real_dataset
    centers = getattr(ds, "centers", None) if centers is None else centers
    std = getattr(ds, "std", None) if std is None else std
    if centers is None or std is None:
        log.warning("mixture_modes skipped: the real dataset has no .centers/.std")
        return {}
    out = mixture_modes(
        ctx.features("fake", "raw"),
        np.asarray(centers),
        float(std),
        threshold=threshold,
        convention=convention,
        min_count=min_count,
    )
    return {f"modes/{k}": v for k, v in out.items()}


@METRICS.register("class_modes")
@describe(
    tags={
        "modes/class_coverage": ("max", "Class cov."),
        "modes/class_kl": ("min", "Class KL"),
        "modes/class_confident": ("max", "Confident"),
        "modes/stacked_covered": ("max", "Stacked modes"),
        "modes/stacked_kl": ("min", "Stacked KL"),
    },
    options={"min_count": Int(1), "min_confidence": Float(ge=0, lt=1)},
)
def class_modes_metric(
    ctx: EvalContext, min_count: int = 1, min_confidence: float = 0.0
) -> dict[str, float]:
    """Classifier modes of the fake samples -> ``modes/class_coverage``, ``modes/class_kl``;
    for a stacked dataset also ``modes/stacked_covered`` (of 1000) and ``modes/stacked_kl``.

    min_confidence: count only the samples the classifier labels with at least this softmax
        probability (every channel of a stacked sample), the classifier's analogue of the
        2-D mixtures' "high quality" rule; it also logs ``modes/class_confident``, the
        fraction of samples kept.  0 (default, as VEEGAN and PacGAN): every sample counts, so
        a generator of unrecognisable images still covers the classes its noise lands in.
    """
    ds = ctx.real_dataset
    if ctx.is_points or not getattr(ds, "num_classes", None):
        log.warning("class_modes skipped: needs a labelled image dataset as the real source")
        return {}
    ext = ctx.extractor("classifier")
    out_fake = ctx.outputs("fake", "classifier")
    labels, k = out_fake["labels"], ext.num_classes
    keep = (out_fake["confidence"] >= min_confidence).reshape(len(labels), -1).all(1)
    labels = labels[keep]
    if labels.ndim == 2:
        out = class_modes(labels.reshape(-1), k, min_count=min_count)
        out.update(stacked_modes(labels, k, min_count=min_count))
    else:
        out = class_modes(labels, k, min_count=min_count)
    if min_confidence > 0:
        out["class_confident"] = float(keep.mean())
    return {f"modes/{k_}": v for k_, v in out.items()}


@METRICS.register("ndb")
@describe(
    tags={
        "modes/ndb": ("min", "NDB", False),
        "modes/ndb_frac": ("min", "NDB (fraction)", False),
        "modes/ndb_js": ("min", "NDB JS", False),
    },
    options={"num_bins": Int(2), "alpha": Float(gt=0, lt=1), "max_real": Int(1, null=True)},
    min_samples=MinSamples(
        lambda o: o["num_bins"], 1, "k-means makes num_bins={num_bins} bins of real samples"
    ),
)
def ndb_metric(
    ctx: EvalContext,
    features: str | None = None,
    num_bins: int = 50,
    alpha: float = 0.05,
    max_real: int | None = 10_000,
    whiten: bool = True,
) -> dict[str, float]:
    """NDB on k-means bins of the real features -> ``modes/ndb``, ``modes/ndb_frac``,
    ``modes/ndb_js``."""
    out = ndb(
        ctx.features("real", features),
        ctx.features("fake", features),
        num_bins=num_bins,
        alpha=alpha,
        max_real=max_real,
        whiten=whiten,
        seed=ctx.seed,
    )
    return {f"modes/{k}": v for k, v in out.items()}
