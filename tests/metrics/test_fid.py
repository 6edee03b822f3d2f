"""FID / KID / streaming statistics against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gansn.metrics.fid import (
    StreamingStats,
    feature_stats,
    fid_infinity,
    frechet_distance,
    kid,
    load_stats,
    mmd2_polynomial,
    save_stats,
)


def _random_cov(rng: np.random.Generator, d: int, n: int) -> np.ndarray:
    """Sample covariance of n points in d dims: singular when n <= d."""
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3
    return np.cov(x, rowvar=False)


def _fid_sqrtm(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's route: non-symmetric scipy sqrtm of the product, real part."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("method", ["auto", "eigh", "cholesky"])
@pytest.mark.parametrize(("d", "n"), [(8, 200), (32, 500), (16, 10)])
def test_frechet_matches_scipy_sqrtm(d: int, n: int, method: str) -> None:
    rng = np.random.default_rng(d + n)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _random_cov(rng, d, n), _random_cov(rng, d, n)
    ref = _fid_sqrtm(mu1, s1, mu2, s2)
    if method == "cholesky" and n <= d:
        with pytest.raises(np.linalg.LinAlgError):  # singular Σ1: only eigh applies
            frechet_distance(mu1, s1, mu2, s2, method=method)
        return
    ours = frechet_distance(mu1, s1, mu2, s2, method=method)
    # sqrtm of a singular product is ill-conditioned; its own error sets the tolerance
    tol = 1e-8 if n > d else 1e-4
    assert ours == pytest.approx(ref, rel=tol, abs=tol)


def test_frechet_closed_form_diagonal() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_closed_form_commuting() -> None:
    # Σ1 = U A Uᵀ, Σ2 = U B Uᵀ commute: FID = |Δμ|² + Σ (√a - √b)²
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    a, b = rng.uniform(0, 3, 7), rng.uniform(0, 3, 7)
    a[:2] = 0  # singular Σ1
    s1, s2 = u @ np.diag(a) @ u.T, u @ np.diag(b) @ u.T
    mu = np.zeros(7)
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    # √ of round-off-level eigenvalues (~1e-16 -> 1e-8) limits the agreement on singular Σ
    assert frechet_distance(mu, s1, mu, s2, method="eigh") == pytest.approx(expected, rel=1e-7)
    assert frechet_distance(mu, s2, mu, s1) == pytest.approx(expected, rel=1e-7)


def test_frechet_identity_and_symmetry() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 64))  # N < d: singular covariance
    mu, s = feature_stats(x)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-8)
    y = rng.standard_normal((80, 64)) + 0.5
    m2, s2 = feature_stats(y)
    # singular Σ: √ of round-off-level eigenvalues bounds the agreement near 1e-9 relative
    assert frechet_distance(mu, s, m2, s2) == pytest.approx(
        frechet_distance(m2, s2, mu, s), rel=1e-7
    )
    assert frechet_distance(mu, s, m2, s2) > 0


def test_streaming_stats_equal_numpy() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1003, 12)) * 5 + 1e3  # a large offset would wreck naive sums
    acc = StreamingStats()
    for i in range(0, len(x), 97):
        acc.update(x[i : i + 97].astype(np.float32))
    x32 = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(acc.mean, x32.mean(0), rtol=1e-12)
    np.testing.assert_allclose(acc.cov, np.cov(x32, rowvar=False), rtol=1e-9, atol=1e-9)
    assert acc.n == 1003


def test_stats_file_roundtrip_pytorch_fid_layout(tmp_path) -> None:
    mu, sigma = np.arange(3.0), np.eye(3)
    path = save_stats(tmp_path / "s.npz", mu, sigma, n=10)
    with np.load(path) as f:
        assert {"mu", "sigma"} <= set(f.keys())
    m2, s2 = load_stats(path)
    np.testing.assert_array_equal(m2, mu)
    np.testing.assert_array_equal(s2, sigma)


def test_stats_file_never_written_into_another_writers_temp_file(tmp_path) -> None:
    path = tmp_path / "s.npz"
    other = tmp_path / "s.npz.tmp.npz"  # the temp name every writer once shared
    other.write_bytes(b"another job, mid-write")
    save_stats(path, np.arange(2.0), np.eye(2))
    assert other.read_bytes() == b"another job, mid-write"
    np.testing.assert_array_equal(load_stats(path)[0], np.arange(2.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "s.npz.tmp.npz"]


def _mmd2_loop(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1) ** 3

    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy


def test_kid_matches_python_loop() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5)) + 0.3
    assert mmd2_polynomial(x, y) == pytest.approx(_mmd2_loop(x, y), rel=1e-10)
    # subsets: re-draw the same indices and average the loop reference
    mean, std = kid(x, y, num_subsets=4, subset_size=10, seed=7)
    sub_rng = np.random.default_rng(7)
    vals = []
    for _ in range(4):
        xi = sub_rng.choice(30, 10, replace=False)
        yi = sub_rng.choice(30, 10, replace=False)
        vals.append(_mmd2_loop(x[xi], y[yi]))
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-8)


def _mmd2_float64(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² from whole float64 kernel matrices: the definition, vectorized."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d, m, n = x.shape[1], len(x), len(y)
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def test_mmd2_triangle_chunks_match_python_loop() -> None:
    # 150 and 131 rows span three 64-row chunks of the within-set triangle sums, the last
    # one partial; unequal sizes check the separate normalizers
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((150, 7)), rng.standard_normal((131, 7)) * 1.2 + 0.2
    assert mmd2_polynomial(x, y) == pytest.approx(_mmd2_loop(x, y), rel=1e-10)


def _features32(rng: np.random.Generator, n: int, d: int, shift: float) -> np.ndarray:
    """Non-negative float32 features, as an extractor's pooled activations."""
    return np.abs(rng.standard_normal((n, d)) + shift).astype(np.float32)


def test_kid_float32_features_match_float64_reference() -> None:
    # float32 features get float32 inner products (as torch-fidelity) but float64 kernels and
    # sums; against the float64 definition on the same numbers the error is the float32
    # products' (~1e-8 of the kernel's mean here), far below the spread over subsets
    rng = np.random.default_rng(12)
    x, y = _features32(rng, 400, 256, 0.0), _features32(rng, 300, 256, 0.05)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    ref = _mmd2_float64(x, y)
    assert mmd2_polynomial(x64, y64) == pytest.approx(ref, rel=1e-10)
    assert abs(mmd2_polynomial(x, y) - ref) < 1e-7
    # the same subsets: the draws do not depend on the dtype
    mean, std = kid(x, y, num_subsets=6, subset_size=120, seed=3)
    mean64, std64 = kid(x64, y64, num_subsets=6, subset_size=120, seed=3)
    assert abs(mean - mean64) < 1e-3 * std64 and abs(std - std64) < 1e-3 * std64
    # one float64 side: everything in float64, as before
    mixed = kid(x, y64, num_subsets=6, subset_size=120, seed=3)
    assert mixed == pytest.approx((mean64, std64), rel=1e-12)


def test_kid_same_distribution_near_zero() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((400, 16)), rng.standard_normal((400, 16))
    mean, std = kid(x, y, num_subsets=10, subset_size=200)
    assert abs(mean) < 3 * std + 1e-3
    far, _ = kid(x, y + 2, num_subsets=10, subset_size=200)
    assert far > 10 * abs(mean)


def test_fid_infinity_removes_bias() -> None:
    rng = np.random.default_rng(6)
    d = 16
    real_stats = (np.zeros(d), np.eye(d))  # exact statistics of the true distribution
    fake = rng.standard_normal((3000, d))
    fid_n = frechet_distance(*real_stats, *feature_stats(fake[:600]))
    value, info = fid_infinity(real_stats, fake, num_points=8, min_n=300)
    assert len(info["fid"]) == 8 and info["slope"] > 0  # FID grows as 1/N grows
    assert abs(value) < fid_n / 3


@pytest.mark.parametrize(
    "n_real,n_fake,subset_size,num_subsets,std_defined",
    [
        (50, 50, 1000, 10, False),  # every subset is all samples: no spread to report
        (50, 50, 50, 10, False),  # the same, asked for explicitly
        (60, 50, 1000, 10, True),  # the real side still varies
        (50, 50, 20, 10, True),  # proper subsets
        (50, 50, 20, 1, False),  # one subset has no spread
    ],
)
def test_kid_std_is_nan_when_subsets_cannot_vary(
    n_real, n_fake, subset_size, num_subsets, std_defined
) -> None:
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((n_real, 6)), rng.standard_normal((n_fake, 6)) + 0.5
    mean, std = kid(x, y, subset_size=subset_size, num_subsets=num_subsets)
    assert np.isfinite(mean)
    if std_defined:
        assert std > 1e-6  # a real spread, not round-off
    else:
        assert np.isnan(std)
    if n_real == n_fake <= subset_size:
        assert mean == pytest.approx(mmd2_polynomial(x, y), rel=1e-12)  # all samples, once
