"""GAN losses against values worked out by hand from their formulas (plain Python math)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gansn.errors import ConfigError, UnknownNameError
from gansn.losses import LOSSES, GANLoss, build_loss, gradient_penalty

REAL = [0.5, -1.5, 2.0]
FAKE = [-0.3, 0.8, 1.2]


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


EXPECTED = {
    # name: (d_loss, g_loss) from the papers' formulas
    "hinge": (
        mean(max(0.0, 1 - r) for r in REAL) + mean(max(0.0, 1 + f) for f in FAKE),
        -mean(FAKE),
    ),
    "nonsaturating": (
        mean(softplus(-r) for r in REAL) + mean(softplus(f) for f in FAKE),
        mean(-math.log(sigmoid(f)) for f in FAKE),
    ),
    "wasserstein": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "lsgan": (
        0.5 * mean((r - 1) ** 2 for r in REAL) + 0.5 * mean(f**2 for f in FAKE),
        0.5 * mean((f - 1) ** 2 for f in FAKE),
    ),
}


def test_expected_values_by_hand():
    # the same numbers, worked out on paper, so the table above cannot drift silently
    hand = {
        "hinge": ((0.5 + 2.5 + 0) / 3 + (0.7 + 1.8 + 2.2) / 3, -1.7 / 3),
        "wasserstein": (1.7 / 3 - 1.0 / 3, -1.7 / 3),
        "lsgan": (
            0.5 * (0.25 + 6.25 + 1.0) / 3 + 0.5 * (0.09 + 0.64 + 1.44) / 3,
            0.5 * (1.69 + 0.04 + 0.04) / 3,
        ),
    }
    for name, (d, g) in hand.items():
        assert EXPECTED[name][0] == pytest.approx(d)
        assert EXPECTED[name][1] == pytest.approx(g)


def test_loss_registry_matches_table():
    assert sorted(EXPECTED) == LOSSES.names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values_match_formulas(name):
    loss = build_loss({"name": name, "gp_weight": 0.0} if name == "wasserstein" else name)
    assert isinstance(loss, GANLoss)
    d_real, d_fake = torch.tensor(REAL), torch.tensor(FAKE)
    d_expected, g_expected = EXPECTED[name]
    d = loss.d_loss(d_real, d_fake)
    g = loss.g_loss(d_fake)
    assert d.shape == g.shape == ()
    assert d.item() == pytest.approx(d_expected, rel=1e-6)
    assert g.item() == pytest.approx(g_expected, rel=1e-6)


def test_hinge_gradient_is_zero_beyond_the_margin():
    d_real = torch.tensor(REAL, requires_grad=True)
    d_fake = torch.tensor(FAKE, requires_grad=True)
    build_loss("hinge").d_loss(d_real, d_fake).backward()
    n = len(REAL)
    assert d_real.grad.tolist() == pytest.approx([-1 / n if r < 1 else 0.0 for r in REAL])
    assert d_fake.grad.tolist() == pytest.approx([1 / n if f > -1 else 0.0 for f in FAKE])


def test_nonsaturating_gradients_and_stability():
    d_fake = torch.tensor(FAKE, requires_grad=True)
    build_loss("nonsaturating").g_loss(d_fake).backward()
    # d/df -log sigmoid(f) = -(1 - sigmoid(f)) = -sigmoid(-f)
    assert d_fake.grad.tolist() == pytest.approx([-sigmoid(-f) / 3 for f in FAKE], rel=1e-5)
    loss = build_loss("nonsaturating")
    big = torch.tensor([200.0, -200.0])
    assert torch.isfinite(loss.d_loss(big, -big))
    assert loss.d_loss(big[:1], -big[:1]).item() == pytest.approx(0.0, abs=1e-30)
    assert loss.g_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)


@pytest.mark.parametrize("name", ["hinge", "nonsaturating", "lsgan"])
def test_losses_without_a_penalty_return_none(name):
    D = nn.Linear(2, 1)
    assert build_loss(name).penalty(D, torch.zeros(2, 2), torch.zeros(2, 2)) is None


class LinearCritic(nn.Module):
    """D(x) = w . x + b for x of any shape (N, ...): its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor, b: float = 0.3) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b


@pytest.mark.parametrize("shape", [(4,), (2, 3, 3)])
@pytest.mark.parametrize("gp_weight", [10.0, 1.0])
def test_gradient_penalty_closed_form_for_linear_critic(shape, gp_weight, seeded):
    numel = math.prod(shape)
    w = torch.randn(numel)
    w = w * (3.0 / w.norm())  # ||w|| = 3, so GP = weight * (3 - 1)^2
    D = LinearCritic(w)
    real = torch.randn(5, *shape)
    fake = torch.randn(5, *shape, requires_grad=True)
    penalty = build_loss({"name": "wasserstein", "gp_weight": gp_weight}).penalty(D, real, fake)
    assert penalty.item() == pytest.approx(gp_weight * (3.0 - 1.0) ** 2, rel=1e-5)
    penalty.backward()
    # d/dw weight * (||w|| - 1)^2 = 2 * weight * (||w|| - 1) * w / ||w||
    torch.testing.assert_close(D.w.grad, 2 * gp_weight * (3.0 - 1.0) * w / 3.0)
    assert fake.grad is None  # the penalty trains D only: samples are detached


def test_gradient_penalty_interpolates_between_real_and_fake(seeded):
    # D(x) = ||x||^2 / 2 has gradient x; with real == fake every interpolate is x itself
    class Quadratic(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x.flatten(1).pow(2).sum(1)

    x = torch.randn(6, 3)
    expected = mean((math.sqrt(sum(v * v for v in row)) - 1) ** 2 for row in x.tolist())
    assert gradient_penalty(Quadratic(), x, x.clone()).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_zero_or_absent_when_weight_is_zero():
    D = LinearCritic(torch.full((4,), 5.0))
    penalty = build_loss({"name": "wasserstein", "gp_weight": 0}).penalty(
        D, torch.randn(3, 4), torch.randn(3, 4)
    )
    assert penalty is None or float(penalty) == 0.0


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        ({"name": "hinge", "margin": 2.0}, ConfigError, "margin"),
        ({"name": "wasserstein", "gp": 10}, ConfigError, "gp"),
        ({"name": "wasserstein", "gp_weight": -1}, ConfigError, "gp_weight"),
        ({"name": "hinj"}, UnknownNameError, "valid names: hinge, lsgan, nonsaturating"),
    ],
)
def test_build_loss_rejects_bad_configs(cfg, error, match):
    with pytest.raises(error, match=match):
        build_loss(cfg)


def test_build_loss_passes_options():
    loss = build_loss({"name": "wasserstein", "gp_weight": 10})
    assert loss.gp_weight == 10.0
    assert build_loss("hinge").name == "hinge"
