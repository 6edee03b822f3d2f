"""Mode-collapse metrics on constructed samples with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from gansn.metrics.modes import (
    class_modes,
    js_divergence,
    kl_to_uniform,
    mixture_modes,
    ndb,
    stacked_mode_ids,
    stacked_modes,
)

RING = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
GRID = np.array([(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], float)


def _around(centers: np.ndarray, per_mode: int, std: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # 1σ per axis keeps every point within 3σ of its centre (√2 σ at most)
    noise = np.clip(rng.standard_normal((len(centers), per_mode, 2)), -1, 1) * std
    return (centers[:, None, :] + noise).reshape(-1, 2)


@pytest.mark.parametrize(("centers", "std"), [(RING, 0.01), (GRID, 0.05)])
def test_all_modes(centers: np.ndarray, std: float) -> None:
    out = mixture_modes(_around(centers, 100, std), centers, std)
    assert out["covered"] == len(centers)
    assert out["covered_frac"] == 1.0
    assert out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(0.0, abs=1e-12)


def test_one_mode() -> None:
    out = mixture_modes(_around(GRID[3:4], 500, 0.05), GRID, 0.05)
    assert out["covered"] == 1
    assert out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(math.log(25))


def test_off_mode_noise() -> None:
    # points halfway between grid modes: nowhere near any of them
    samples = GRID[:-1] + np.array([1.0, 1.0])
    out = mixture_modes(samples, GRID, 0.05)
    assert out["covered"] == 0 and out["high_quality"] == 0.0
    assert math.isnan(out["kl"])


def test_mixed_quality_and_pacgan_threshold() -> None:
    good = _around(RING[:4], 50, 0.01)  # 200 good samples on 4 modes
    bad = np.zeros((200, 2))  # the ring's centre is 100σ from every mode
    out = mixture_modes(np.concatenate([good, bad]), RING, 0.01)
    assert out["covered"] == 4 and out["high_quality"] == 0.5
    assert out["kl"] == pytest.approx(math.log(8) - math.log(4))
    # one lone sample on mode 5: covered under VEEGAN's rule, lost under PacGAN's (N/K/5 = 10)
    lone = np.concatenate([good, RING[5:6]])
    assert mixture_modes(lone, RING, 0.01)["covered"] == 5
    assert mixture_modes(lone, RING, 0.01, convention="fifth_of_uniform")["covered"] == 4


def test_kl_and_js_against_scipy() -> None:
    counts = np.array([5, 0, 3, 2])
    assert kl_to_uniform(counts) == pytest.approx(entropy(counts / 10, np.full(4, 0.25)))
    p, q = np.array([1, 2, 3, 0]), np.array([0, 1, 1, 4])
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2)


def test_class_modes() -> None:
    labels = np.array([0] * 6 + [1] * 3 + [2])
    out = class_modes(labels, 4)
    assert out["class_coverage"] == 0.75
    assert out["class_kl"] == pytest.approx(entropy([0.6, 0.3, 0.1, 0], np.full(4, 0.25)))
    assert class_modes(labels, 4, min_count=3)["class_coverage"] == 0.5
    assert class_modes(np.arange(10), 10)["class_kl"] == pytest.approx(0.0)


def test_stacked_modes() -> None:
    ch = np.array([[1, 2, 3], [0, 0, 9], [1, 2, 3]])
    np.testing.assert_array_equal(stacked_mode_ids(ch), [123, 9, 123])
    out = stacked_modes(ch)
    assert out["stacked_covered"] == 2
    p = np.array([2 / 3, 1 / 3])  # KL to uniform over all 1000 modes, zero bins contribute 0
    assert out["stacked_kl"] == pytest.approx(float((p * np.log(p * 1000)).sum()))
    every = np.array([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    assert stacked_modes(every)["stacked_covered"] == 1000
    assert stacked_modes(every)["stacked_kl"] == pytest.approx(0.0, abs=1e-12)


def test_ndb_same_vs_collapsed() -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((10, 8)) * 5
    real = centers[rng.integers(10, size=4000)] + rng.standard_normal((4000, 8))
    same = centers[rng.integers(10, size=2000)] + rng.standard_normal((2000, 8))
    collapsed = centers[rng.integers(3, size=2000)] + rng.standard_normal((2000, 8))
    a = ndb(real, same, num_bins=10, seed=0)
    b = ndb(real, collapsed, num_bins=10, seed=0)
    assert a["ndb"] <= 2 and a["ndb_js"] < 0.01
    assert b["ndb"] >= 7 and b["ndb_js"] > 0.2
    assert b["ndb_frac"] == b["ndb"] / 10
    identical = ndb(real, real, num_bins=10)
    assert identical["ndb"] == 0 and identical["ndb_js"] == pytest.approx(0.0, abs=1e-12)
