"""What a metric asks for: :class:`EvalContext` computes the features, statistics and labels
of the real and fake sources once per evaluation (and the real ones once per run, memoized)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gansn import distributed
from gansn.errors import ConfigError
from gansn.metrics.catalog import SIDES
from gansn.metrics.features import FEATURES, FeatureExtractor, build_extractor
from gansn.metrics.fid import (
    StreamingStats,
    load_stats,
    save_stats,
)
from gansn.metrics.sources import DatasetSource, Source, StatsSource

log = logging.getLogger(__name__)


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
