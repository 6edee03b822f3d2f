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
