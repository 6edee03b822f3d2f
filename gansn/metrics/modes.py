"""Mode-collapse metrics: 2-D mixtures, classifier modes, stacked modes and NDB.

All functions are numpy in, ``dict[str, float]`` out.  KL divergences are in nats.

2-D mixtures (ring8, grid25) follow VEEGAN / PacGAN (Lin et al. 2018, Sec. 5):

* a sample is *high quality* when it lies within ``threshold`` (3) standard deviations of
  its nearest mode centre;
* each high-quality sample is registered to its nearest mode;
* a mode is *covered* when at least ``min_count`` high-quality samples are registered to it.
  ``min_count=1`` is the VEEGAN convention, which PacGAN's code also uses (gansn's
  default); ``convention="fifth_of_uniform"`` is a stricter rule of gansn's own, not
  PacGAN's: a mode is lost when it gets fewer than 1/5 of the N/K samples a perfect
  generator would put there (20 of 2,500 samples for grid25);
* KL is the *reverse* KL of PacGAN, KL(q ‖ uniform) with q the normalized histogram of the
  modes of the high-quality samples; 0 for a perfect generator, log K for a single mode.
  It is NaN when no sample is high quality (q undefined).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.stats import norm

__all__ = [
    "class_modes",
    "js_divergence",
    "kl_to_uniform",
    "mixture_modes",
    "ndb",
    "stacked_mode_ids",
    "stacked_modes",
]


def kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p ‖ uniform) for a histogram of K bins (counts, any scale); log K - H(p)."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(np.log(len(counts)) + (p * np.log(p)).sum())


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (nats) between two histograms (normalized here)."""
    p = np.asarray(p, np.float64) / np.sum(p)
    q = np.asarray(q, np.float64) / np.sum(q)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log(a[nz] / b[nz])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def mixture_modes(
    samples: np.ndarray,
    centers: np.ndarray,
    std: float,
    *,
    threshold: float = 3.0,
    min_count: int | None = None,
    convention: str = "veegan",
) -> dict[str, float]:
    """Mode metrics of 2-D (any-D) samples against a Gaussian mixture with isotropic ``std``.

    samples: (N, D), centers: (K, D).  ``convention``: "veegan" (min_count 1, as VEEGAN's
    and PacGAN's code) or "fifth_of_uniform" (min_count = ceil(N / K / 5), stricter, no
    paper's rule); an explicit ``min_count`` wins.  Returns ``covered``
    (number of modes, 0..K), ``covered_frac``, ``high_quality`` (fraction of samples) and
    ``kl`` (reverse KL of the high-quality mode histogram to uniform).
    """
    samples = np.asarray(samples, np.float64).reshape(len(samples), -1)
    centers = np.asarray(centers, np.float64)
    k = len(centers)
    if min_count is None:
        if convention == "veegan":
            min_count = 1
        elif convention == "fifth_of_uniform":
            min_count = max(1, math.ceil(len(samples) / k / 5))
        else:
            raise ValueError(
                f"convention must be 'veegan' or 'fifth_of_uniform', got {convention!r}"
            )
    d = np.sqrt(((samples[:, None, :] - centers[None, :, :]) ** 2).sum(-1))  # (N, K)
    nearest = d.argmin(1)
    good = d[np.arange(len(samples)), nearest] <= threshold * std
    counts = np.bincount(nearest[good], minlength=k)
    covered = int((counts >= min_count).sum())
    return {
        "covered": float(covered),
        "covered_frac": covered / k,
        "high_quality": float(good.mean()) if len(samples) else float("nan"),
        "kl": kl_to_uniform(counts),
    }


def class_modes(labels: np.ndarray, num_classes: int, *, min_count: int = 1) -> dict[str, float]:
    """Class coverage and KL of predicted labels (N,) ints in [0, num_classes).

    ``class_coverage``: fraction of classes predicted for at least ``min_count`` samples
    (default 1: a class counts as soon as one sample is classified as it).
    ``class_kl``: KL(predicted class histogram ‖ uniform), nats.
    """
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)[:num_classes]
    return {
        "class_coverage": float((counts >= min_count).mean()),
        "class_kl": kl_to_uniform(counts),
    }


def stacked_mode_ids(channel_labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """(N, C) per-channel class ids -> (N,) mode id, e.g. 100·c0 + 10·c1 + c2 for 10 classes."""
    channel_labels = np.asarray(channel_labels, np.int64)
    weights = num_classes ** np.arange(channel_labels.shape[1] - 1, -1, -1)
    return channel_labels @ weights


def stacked_modes(
    channel_labels: np.ndarray, num_classes: int = 10, *, min_count: int = 1
) -> dict[str, float]:
    """Stacked-MNIST style modes: (N, C) per-channel labels -> num_classes**C modes.

    ``stacked_covered``: number of modes with at least ``min_count`` samples (of 1000 for
    3 channels × 10 classes); ``stacked_kl``: KL(mode histogram ‖ uniform), nats.
    """
    channel_labels = np.asarray(channel_labels, np.int64)
    k = num_classes ** channel_labels.shape[1]
    counts = np.bincount(stacked_mode_ids(channel_labels, num_classes), minlength=k)
    return {
        "stacked_covered": float((counts >= min_count).sum()),
        "stacked_kl": kl_to_uniform(counts),
    }


def ndb(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    num_bins: int = 50,
    alpha: float = 0.05,
    max_real: int | None = 10_000,
    whiten: bool = True,
    seed: int = 0,
) -> dict[str, float]:
    """Number of statistically different bins (Richardson & Weiss 2018).

    real: (N_r, d), fake: (N_f, d).  K-means (scipy ``kmeans2``, k-means++ init, seeded) on
    at most ``max_real`` real samples defines ``num_bins`` bins; every real and fake sample
    goes to its nearest centre, and each bin's two proportions are compared with a pooled
    two-proportion z-test.  ``ndb``: number of bins with p < alpha; ``ndb_frac``: ndb / K;
    ``ndb_js``: JS divergence (nats) between the two bin histograms.  ``whiten`` scales
    features by the real per-dimension std first (the reference code's option), so no
    dimension dominates the clustering.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    rng = np.random.default_rng(seed)
    train = (
        real
        if max_real is None or len(real) <= max_real
        else real[rng.choice(len(real), max_real, replace=False)]
    )
    mean = train.mean(0)
    scale = train.std(0) + 1e-8 if whiten else np.ones(real.shape[1])
    z_train = (train - mean) / scale
    centers, _ = kmeans2(z_train, num_bins, minit="++", seed=int(rng.integers(2**31)))

    def histogram(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / scale
        d2 = (z * z).sum(1)[:, None] + (centers * centers).sum(1)[None, :] - 2 * z @ centers.T
        return np.bincount(d2.argmin(1), minlength=num_bins)

    n_r, n_f = len(real), len(fake)
    p_r, p_f = histogram(real) / n_r, histogram(fake) / n_f
    pooled = (p_r * n_r + p_f * n_f) / (n_r + n_f)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_r + 1 / n_f))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p_r - p_f) / se, 0.0)
    different = 2 * norm.sf(np.abs(z)) < alpha
    return {
        "ndb": float(different.sum()),
        "ndb_frac": float(different.mean()),
        "ndb_js": js_divergence(p_r, p_f),
    }
