"""Fréchet distance (FID), kernel inception distance (KID) and FID∞ on feature arrays.

Everything here is numpy in, floats out, so notebooks can use it without the rest of gansn::

    from gansn.metrics.fid import frechet_distance, feature_stats, kid
    fid = frechet_distance(*feature_stats(real_feats), *feature_stats(fake_feats))

Statistics files use pytorch-fid's ``.npz`` layout (``mu``: (d,), ``sigma``: (d, d)), so a
file written here is read by pytorch-fid and vice versa.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.linalg import blas as _blas

__all__ = [
    "StreamingStats",
    "feature_stats",
    "fid_infinity",
    "frechet_distance",
    "kid",
    "kid_subset_size",
    "load_stats",
    "mmd2_polynomial",
    "save_stats",
    "trace_sqrt_product",
]


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "auto") -> float:
    """tr(sqrt(Σ1 Σ2)) for symmetric PSD Σ1, Σ2, both (d, d), in float64.

    Σ1Σ2 is not symmetric, but it is similar to a symmetric PSD matrix whose eigenvalues
    ``eigvalsh`` returns exactly and quickly; tr sqrt(Σ1Σ2) is the sum of their square roots.
    This avoids ``scipy.linalg.sqrtm`` of the non-symmetric product (slow, complex round-off,
    behaviour changed across SciPy releases).  Two factorizations Σ1 = F Fᵀ give the
    symmetric matrix Fᵀ Σ2 F (AB and BA share eigenvalues):

    * ``eigh``: Σ1 = U Λ Uᵀ, F = U √Λ, so Fᵀ Σ2 F = √Λ (Uᵀ Σ2 U) √Λ — the eigenvalues of
      sqrt(Σ1) Σ2 sqrt(Σ1).  Valid for singular Σ1 (N < d): negative round-off eigenvalues
      are clipped to 0.
    * ``cholesky``: Σ1 = L Lᵀ, F = L — about twice as fast, but needs Σ1 positive definite.

    ``auto`` tries Cholesky of Σ1, then of Σ2 (tr sqrt(Σ1Σ2) = tr sqrt(Σ2Σ1)), and uses
    ``eigh`` only when neither is numerically positive definite (both N < d).
    """
    sigma1 = np.asarray(sigma1, dtype=np.float64)
    sigma2 = np.asarray(sigma2, dtype=np.float64)
    if method not in ("auto", "cholesky", "eigh"):
        raise ValueError(f"method must be auto, cholesky or eigh; got {method!r}")
    m = None
    if method == "cholesky":
        f = np.linalg.cholesky(sigma1)
        m = f.T @ sigma2 @ f
    elif method == "auto":
        for a, b in ((sigma1, sigma2), (sigma2, sigma1)):
            try:
                f = np.linalg.cholesky(a)
            except np.linalg.LinAlgError:
                continue
            m = f.T @ b @ f
            break
    if m is None:
        w, u = np.linalg.eigh(sigma1)
        r = np.sqrt(np.clip(w, 0.0, None))
        m = r[:, None] * (u.T @ sigma2 @ u) * r[None, :]
    m = (m + m.T) / 2  # matmul round-off breaks exact symmetry
    ev = np.clip(np.linalg.eigvalsh(m), 0.0, None)
    return float(np.sqrt(ev).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, method: str = "auto"
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); mu: (d,), sigma: (d, d).

    ||mu1 - mu2||² + tr Σ1 + tr Σ2 - 2 tr sqrt(Σ1 Σ2), all in float64; ``method`` as in
    :func:`trace_sqrt_product`.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    value = (
        diff @ diff
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2 * trace_sqrt_product(sigma1, sigma2, method)
    )
    # tiny negative values are round-off of an exact 0 (identical statistics)
    return float(max(value, 0.0))


class StreamingStats:
    """Running mean and covariance of features fed in batches; memory O(d²), not O(N·d).

    Sums are kept in float64; the covariance is the unbiased one (ddof=1), like ``np.cov``
    and pytorch-fid.  Features are centred on the first batch's mean before summing, which
    keeps the ``Σxxᵀ - N·μμᵀ`` subtraction from cancelling catastrophically when |μ| ≫ σ.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.n = 0
        self.dim = dim
        self._shift: np.ndarray | None = None
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def update(self, x: Any) -> None:
        """Add a batch of features, (B, d) numpy array or torch tensor."""
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected (B, d) features, got shape {x.shape}")
        if x.shape[0] == 0:
            return
        if self._shift is None:
            if self.dim is not None and x.shape[1] != self.dim:
                raise ValueError(f"expected dim {self.dim}, got {x.shape[1]}")
            self.dim = x.shape[1]
            self._shift = x.mean(axis=0)
            self._sum = np.zeros(self.dim)
            self._outer = np.zeros((self.dim, self.dim))
        xc = x - self._shift
        self._sum += xc.sum(axis=0)
        self._outer += xc.T @ xc
        self.n += x.shape[0]

    @property
    def mean(self) -> np.ndarray:
        """(d,) mean."""
        if self.n == 0:
            raise ValueError("no features were added")
        return self._shift + self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        """(d, d) unbiased covariance (needs at least two samples)."""
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.n}")
        m = self._sum / self.n
        c = (self._outer - self.n * np.outer(m, m)) / (self.n - 1)
        return (c + c.T) / 2

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu (d,), sigma (d, d))."""
        return self.mean, self.cov


def feature_stats(features: np.ndarray, batch_size: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) features -> (mu (d,), sigma (d, d)) in float64, as np.mean / np.cov(rowvar=False)."""
    acc = StreamingStats()
    for i in range(0, len(features), batch_size):
        acc.update(features[i : i + batch_size])
    return acc.stats()


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, **meta: Any) -> Path:
    """Write pytorch-fid-compatible statistics (``mu``, ``sigma``) plus scalar metadata keys."""
    from gansn.utils import atomic_write  # here: this module stays numpy-only to import

    arrays = {"mu": mu, "sigma": sigma, **{k: np.asarray(v) for k, v in meta.items()}}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)

    # atomic, through a temp file of its own: a reader never sees a half-written cache file,
    # and two jobs of a sweep caching the same statistics never write into one temp file
    return atomic_write(path, write)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``mu`` and ``sigma`` from a pytorch-fid style ``.npz``."""
    with np.load(path) as f:
        if "mu" not in f or "sigma" not in f:
            raise KeyError(f"{path} has no 'mu'/'sigma' arrays (keys: {sorted(f.keys())})")
        return f["mu"].astype(np.float64), f["sigma"].astype(np.float64)


def _product_dtype(*arrays: Any) -> type:
    """float32 when every input already is float32 (features as extracted), else float64."""
    if all(getattr(a, "dtype", None) == np.float32 for a in arrays):
        return np.float32
    return np.float64


def _poly_kernel_sum(
    gram: np.ndarray, gamma: float, coef0: float, degree: int, lower: bool = False, rows: int = 64
) -> float:
    """Σ of k = (γ g + c)^degree over a Gram matrix, in float64.

    gram: (m, n) inner products in float32 or float64; with ``lower`` only its strict lower
    triangle is read (and summed), as :func:`_gram_lower` fills it.  Row chunks keep the
    float64 copy in cache: the kernel of a 1000 × 1000 Gram is 8 MB, a chunk 0.5 MB.
    """

    def kernel_sum(g: np.ndarray, strict_lower: bool = False) -> float:
        k = g.astype(np.float64)
        k *= gamma
        k += coef0
        # repeated products: numpy's float ** is ~20x slower than two multiplies
        k = k * k * k if degree == 3 else k**degree
        return float((np.tril(k, -1) if strict_lower else k).sum())

    total = 0.0
    for i in range(0, len(gram), rows):
        if not lower:
            total += kernel_sum(gram[i : i + rows])
            continue
        # rows i..i+rows: every column left of i, and the strict lower part of the square
        if i:
            total += kernel_sum(gram[i : i + rows, :i])
        total += kernel_sum(gram[i : i + rows, i : i + rows], strict_lower=True)
    return total


def _gram_lower(x: np.ndarray) -> np.ndarray:
    """(m, d) C-contiguous -> (m, m) x xᵀ with the lower triangle and diagonal filled.

    BLAS syrk straight from scipy: half the work of a general product, and unlike numpy's
    ``x @ x.T`` (which calls syrk too) no copy of the triangle into the other half.
    ``x.T`` is Fortran-ordered, so it is passed without a copy.
    """
    (syrk,) = _blas.get_blas_funcs(("syrk",), (x,))
    return syrk(1.0, x.T, trans=1).T


def mmd2_polynomial(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> float:
    """Unbiased MMD² with k(a, b) = (γ aᵀb + c)^degree, γ = 1/d; x: (m, d), y: (n, d).

    The inner products are taken in the inputs' precision (float32 when both are float32, as
    features from an extractor are; float64 otherwise), the kernel and every sum in float64.
    torch-fidelity takes the same float32 products but also sums in float32: at 1000 × 2048
    that moves its MMD² ~400× further from the float64 value than gansn's
    (``scripts/bench_metrics.py``).
    """
    dtype = _product_dtype(x, y)
    x = np.ascontiguousarray(x, dtype)
    y = np.ascontiguousarray(y, dtype)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("unbiased MMD² needs at least 2 samples per set")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    # unbiased: the within-set sums leave out k(x_i, x_i), so each is twice its strict
    # lower triangle
    sxx = _poly_kernel_sum(_gram_lower(x), gamma, coef0, degree, lower=True)
    syy = _poly_kernel_sum(_gram_lower(y), gamma, coef0, degree, lower=True)
    sxy = _poly_kernel_sum(x @ y.T, gamma, coef0, degree)
    return 2 * sxx / (m * (m - 1)) + 2 * syy / (n * (n - 1)) - 2 * sxy / (m * n)


def kid_subset_size(n_real: int, n_fake: int, subset_size: int = 1000) -> int:
    """The subset size KID uses: ``subset_size``, or fewer when there are fewer samples."""
    return min(subset_size, n_real, n_fake)


def kid(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance (Bińkowski et al. 2018) as torch-fidelity / stylegan2-ada.

    real: (N_r, d), fake: (N_f, d).  Unbiased cubic-polynomial MMD² on ``num_subsets``
    random subsets of size ``m = min(subset_size, N_r, N_f)`` drawn without replacement.
    Returns (mean, std) over subsets (std with ddof=0, as torch-fidelity).  Products in
    the features' precision, sums in float64: see :func:`mmd2_polynomial`.

    When ``m`` equals both N_r and N_f every "subset" is the whole of both sets, so the
    subsets do not vary: the mean is the MMD² of all samples (computed once) and the std
    is NaN, not the ~1e-15 of summation round-off that would pass for certainty.  One
    subset (``num_subsets=1``) has no spread either: NaN.
    """
    m = kid_subset_size(len(real), len(fake), subset_size)
    # one conversion up front (a no-op for float32 or float64 features), not one per subset
    dtype = _product_dtype(real, fake)
    real, fake = np.asarray(real, dtype), np.asarray(fake, dtype)
    if m == len(real) and m == len(fake):
        return mmd2_polynomial(real, fake), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        xi = rng.choice(len(real), m, replace=False)
        yi = rng.choice(len(fake), m, replace=False)
        values[i] = mmd2_polynomial(real[xi], fake[yi])
    std = float(values.std()) if num_subsets > 1 else float("nan")
    return float(values.mean()), std


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016) of (N, K) classifier logits -> (mean, std).

    As the authors' TF code: softmax over all K logits, the samples cut in order into
    ``splits`` consecutive parts, per part exp(mean_i KL(p(y|x_i) ‖ p(y))) with p(y) the
    part's mean prediction; mean and (population) std of the parts' scores.
    """
    logits = np.asarray(logits, np.float64)
    n = len(logits)
    if splits < 1 or n < splits:
        raise ValueError(f"need at least one sample per split: {n} samples, {splits} splits")
    z = logits - logits.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part_p = p[i * n // splits : (i + 1) * n // splits]
        part_log = log_p[i * n // splits : (i + 1) * n // splits]
        log_py = np.log(part_p.mean(0))
        kl = (part_p * (part_log - log_py)).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def fid_infinity(
    real_stats: tuple[np.ndarray, np.ndarray],
    fake: np.ndarray,
    *,
    num_points: int = 15,
    min_n: int | None = None,
    seed: int = 0,
) -> tuple[float, dict[str, Any]]:
    """FID∞ (Chong & Forsyth 2020): FID is linear in 1/N; fit and extrapolate to 1/N = 0.

    real_stats: (mu, sigma) of the real features; fake: (N, d) features.  FID is computed
    on random fake subsets of ``num_points`` sizes evenly spaced in [min_n, N] (default
    min_n = N // 5, as their 5k..50k), a line is fitted to (1/n, FID) and its intercept
    returned, together with the points for inspection.
    """
    n_total = len(fake)
    min_n = max(2, n_total // 5) if min_n is None else min_n
    ns = np.unique(np.linspace(min_n, n_total, num_points).astype(int))
    rng = np.random.default_rng(seed)
    fids = []
    for n in ns:
        idx = rng.choice(n_total, n, replace=False)
        fids.append(frechet_distance(*real_stats, *feature_stats(fake[idx])))
    slope, intercept = np.polyfit(1.0 / ns, np.asarray(fids), 1)
    return float(intercept), {"n": ns.tolist(), "fid": fids, "slope": float(slope)}
