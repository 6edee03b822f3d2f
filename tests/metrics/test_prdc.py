"""Precision / recall / density / coverage against brute force and a hand-made case."""

from __future__ import annotations

import numpy as np
import pytest

from gansn.metrics.prdc import density_coverage, kth_nn_radii, prdc, precision_recall


def _brute(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """Direct loops over every pair, from the papers' definitions."""

    def dist(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def radius(points, i, k):
        ds = sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)
        return ds[k - 1]

    r_pr = [radius(real, i, k_pr) for i in range(len(real))]
    f_pr = [radius(fake, j, k_pr) for j in range(len(fake))]
    r_dc = [radius(real, i, k_dc) for i in range(len(real))]
    precision = np.mean([any(dist(f, real[i]) <= r_pr[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= f_pr[j] for j in range(len(fake))) for r in real])
    density = sum(dist(f, real[i]) < r_dc[i] for f in fake for i in range(len(real))) / (
        k_dc * len(fake)
    )
    coverage = np.mean([min(dist(real[i], f) for f in fake) < r_dc[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prdc_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((40, 3))
    fake = rng.standard_normal((35, 3)) * 1.3 + 0.4
    # block=7 forces several row blocks, exercising the batched path
    ours = prdc(real, fake, k_pr=3, k_dc=5, block=7)
    ref = _brute(real, fake, 3, 5)
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_hand_made_precision_differs_from_recall() -> None:
    # real spread over 0..4, fake bunched near 2: every fake is realistic (precision 1),
    # but only the real point at 2 is reproduced (recall 1/5)
    real = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    fake = np.array([[2.05], [2.15], [2.25], [2.35]])
    pr = precision_recall(real, fake, k=1)
    assert pr["precision"] == pytest.approx(1.0)
    assert pr["recall"] == pytest.approx(0.2)
    # swapping the roles swaps the numbers, which is what the metric is about
    swapped = precision_recall(fake, real, k=1)
    assert swapped["precision"] == pytest.approx(0.2)
    assert swapped["recall"] == pytest.approx(1.0)
    # density: each fake lies in the radius-1 balls of real 2 and real 3 -> 8 / (1·4)
    # coverage: only the balls of real 2 and real 3 contain a fake -> 2 / 5
    dc = density_coverage(real, fake, k=1)
    assert dc["density"] == pytest.approx(2.0)
    assert dc["coverage"] == pytest.approx(0.4)


def test_radii_exclude_self() -> None:
    x = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(kth_nn_radii(x, 1), [1.0, 1.0, 2.0])
    np.testing.assert_allclose(kth_nn_radii(x, 2, block=1), [3.0, 2.0, 3.0])


def test_identical_sets_are_perfect() -> None:
    x = np.random.default_rng(3).standard_normal((60, 4))
    out = prdc(x, x.copy())
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0


def _cdist_reference(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict:
    """The four scores from whole float64 distance matrices (scipy's cdist: differences, not
    the Gram expansion), each radius the k-th smallest distance to another sample."""
    from scipy.spatial.distance import cdist

    real, fake = real.astype(np.float64), fake.astype(np.float64)

    def radii(x: np.ndarray, k: int) -> np.ndarray:
        return np.sort(cdist(x, x), axis=1)[:, k]  # column 0 is the sample itself

    rf = cdist(real, fake)  # (N_r, N_f)
    r_pr, f_pr, r_dc = radii(real, k_pr), radii(fake, k_pr), radii(real, k_dc)
    return {
        "precision": (rf <= r_pr[:, None]).any(0).mean(),
        "recall": (rf <= f_pr[None, :]).any(1).mean(),
        "density": (rf < r_dc[:, None]).sum() / (k_dc * len(fake)),
        "coverage": (rf < r_dc[:, None]).any(1).mean(),
    }


@pytest.mark.parametrize("block", [64, 1024])
def test_prdc_matches_float64_cdist_reference(block: int) -> None:
    # float32 features shaped like an extractor's (non-negative, correlated), several blocks
    # with a partial last one; counts must agree exactly
    rng = np.random.default_rng(9)
    mix = rng.standard_normal((48, 48)) / 7
    real = np.abs(rng.standard_normal((300, 48)) @ mix).astype(np.float32)
    fake = np.abs(rng.standard_normal((230, 48)) @ (mix * 1.1 + 0.05)).astype(np.float32)
    ours = prdc(real, fake, k_pr=3, k_dc=5, block=block)
    ref = _cdist_reference(real, fake, 3, 5)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # not a trivial case
    from scipy.spatial.distance import cdist

    np.testing.assert_allclose(
        kth_nn_radii(real, 4, block=block),
        np.sort(cdist(real.astype(np.float64), real.astype(np.float64)), axis=1)[:, 4],
        rtol=1e-9,
    )


@pytest.mark.parametrize("block", [1, 2, 3, 5, 8, 100])
def test_ties_on_a_grid_follow_each_papers_comparison(block: int) -> None:
    # integer points with duplicates: the distances are exact and tie, so P/R's d <= r and
    # D/C's d < r decide; blocks narrower than k leave rows fewer candidates than k per block
    rng = np.random.default_rng(10)
    real = rng.integers(0, 4, (30, 2)).astype(np.float64)
    fake = rng.integers(0, 5, (25, 2)).astype(np.float64)
    for k_pr, k_dc in [(1, 1), (3, 5), (4, 4)]:
        ours = prdc(real, fake, k_pr=k_pr, k_dc=k_dc, block=block)
        assert ours == pytest.approx(_brute(real, fake, k_pr, k_dc), abs=1e-12), (k_pr, k_dc)


def test_one_pass_equals_the_separate_scores() -> None:
    rng = np.random.default_rng(11)
    real, fake = rng.standard_normal((70, 5)), rng.standard_normal((55, 5)) + 0.3
    both = prdc(real, fake, k_pr=2, k_dc=6, block=16)
    assert both == {
        **precision_recall(real, fake, k=2, block=16),
        **density_coverage(real, fake, k=6, block=16),
    }
    assert list(both) == ["precision", "recall", "density", "coverage"]


def test_k_must_leave_a_neighbour() -> None:
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="k=4 needs 1 <= k < N=4"):
        kth_nn_radii(x, 4)
    with pytest.raises(ValueError, match="k=0"):
        precision_recall(x, x, k=0)
