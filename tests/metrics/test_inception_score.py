"""Inception Score: the formula against a hand computation, closed forms, and the refusal
when the loaded Inception carries no classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy

from gansn.errors import ConfigError
from gansn.metrics import evaluate
from gansn.metrics.fid import inception_score


def _by_hand(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per consecutive split, written out with scipy."""
    p = softmax(logits.astype(np.float64), axis=1)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0)
        scores.append(math.exp(np.mean([entropy(row, py) for row in part])))
    return float(np.mean(scores)), float(np.std(scores))


def test_matches_a_hand_computation_on_fixed_logits():
    logits = np.random.default_rng(0).normal(0, 3, size=(200, 1008))
    got = inception_score(logits, splits=10)
    want = _by_hand(logits, 10)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert got[1] > 0  # the splits differ: a real spread, not a constant


def test_closed_forms():
    # one prediction for every sample: p(y|x) = p(y), KL 0, IS 1
    same = np.tile(np.linspace(-1, 1, 7), (40, 1))
    assert inception_score(same, splits=4) == pytest.approx((1.0, 0.0), abs=1e-12)
    # confident and balanced over K classes in every split: IS = K
    k = 5
    confident = np.full((50, k), -1e4)
    confident[np.arange(50), np.arange(50) % k] = 0.0
    assert inception_score(confident, splits=10) == pytest.approx((k, 0.0), abs=1e-9)


def test_needs_a_sample_per_split():
    with pytest.raises(ValueError, match="at least one sample per split"):
        inception_score(np.zeros((5, 3)), splits=10)


class _TinyInception(torch.nn.Module):
    """Stands in for the FID Inception: 2048 features and a 1008-way ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3, 2048)
        self.fc = torch.nn.Linear(2048, 1008)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.mean(dim=(2, 3)))


def _fake_loader(has_classifier: bool):
    def load(weights=None, download=False):
        model = _TinyInception().eval().requires_grad_(False)
        info = {"weights": "tiny.pt", "format": "pytorch-fid", "has_classifier": has_classifier}
        return model, info

    return load


def test_metric_uses_the_inception_logits(monkeypatch):
    import gansn.metrics.features as features

    monkeypatch.setattr(features, "load_fid_inception", _fake_loader(True))
    fake = np.random.default_rng(1).uniform(-1, 1, size=(40, 3, 8, 8)).astype(np.float32)
    res, _ = evaluate(
        ["is"], fake, fake, features="inception", num_real=40, num_fake=40, progress=False
    )
    ext = features.InceptionFeatures()
    logits = ext(torch.from_numpy(fake))["logits"].numpy()
    want = inception_score(logits, splits=10)
    assert res["metrics/is"] == pytest.approx(want[0], rel=1e-5)
    assert res["metrics/is_std"] == pytest.approx(want[1], rel=1e-4, abs=1e-7)


def test_refuses_weights_without_a_classifier(monkeypatch):
    import gansn.metrics.features as features

    monkeypatch.setattr(features, "load_fid_inception", _fake_loader(False))
    fake = np.zeros((20, 3, 8, 8), np.float32)
    with pytest.raises(ConfigError, match=r"1008-way classifier.*carry none"):
        evaluate(["is"], fake, fake, features="inception", num_fake=20, progress=False)
