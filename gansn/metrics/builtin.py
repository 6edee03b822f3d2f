"""The built-in metrics, registered in ``METRICS``: FID (and FID-infinity), IS, KID,
precision/recall/density/coverage, and the mode metrics of PacGAN and VEEGAN."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from gansn.errors import ConfigError
from gansn.metrics.catalog import METRICS, MinSamples, describe
from gansn.metrics.context import EvalContext
from gansn.metrics.fid import (
    fid_infinity,
    frechet_distance,
    inception_score,
    kid,
    kid_subset_size,
)
from gansn.metrics.modes import class_modes, mixture_modes, ndb, stacked_modes
from gansn.metrics.prdc import prdc, precision_recall
from gansn.schema import Choice, Float, Int

log = logging.getLogger(__name__)

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
