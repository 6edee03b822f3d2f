"""Normalizations: every registered norm builds, and each does what its paper says.

References are independent of the code under test: singular values from
``numpy.linalg.svd``, norms and statistics computed by hand with numpy/torch reductions.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from gansn.errors import ConfigError
from gansn.nn import NORMS, Norm, build_models, build_norm
from gansn.nn.archs import ModelSpec
from gansn.nn.norms import uses_batch_stats

ALL_NORMS = NORMS.names()
FEATURE_NORMS = ["batch", "group", "instance", "layer"]


def top_singular_value(matrix: np.ndarray) -> float:
    return float(np.linalg.svd(matrix.astype(np.float64), compute_uv=False)[0])


def weight_matrix(layer: nn.Module) -> np.ndarray:
    """The matrix torch's spectral_norm normalizes: output units first, then flattened."""
    w = layer.weight.detach().numpy()
    if isinstance(layer, nn.ConvTranspose2d):  # (in, out, kh, kw): output units are dim 1
        w = np.swapaxes(w, 0, 1)
    return w.reshape(w.shape[0], -1)


def make_layer(kind: str) -> tuple[nn.Module, torch.Tensor]:
    """A fresh layer and an input batch for it."""
    if kind == "linear":
        return nn.Linear(20, 30), torch.randn(4, 20)
    if kind == "conv":
        return nn.Conv2d(4, 6, 3, padding=1), torch.randn(2, 4, 6, 6)
    return nn.ConvTranspose2d(6, 4, 4, 2, 1), torch.randn(2, 6, 3, 3)


# ---------------------------------------------------------------- building


@pytest.mark.parametrize("name", ALL_NORMS)
def test_every_norm_builds_from_name_and_dict(name):
    for cfg in (name, {"name": name}):
        norm = build_norm(cfg)
        assert isinstance(norm, Norm)
        assert norm.name == name
        # spec() rebuilds an equal norm
        again = build_norm(norm.spec())
        assert type(again) is type(norm) and again.spec() == norm.spec()
    assert build_norm(norm) is norm


@pytest.mark.parametrize("name", ALL_NORMS)
def test_every_norm_hooks_return_modules(name):
    norm = build_norm(name)
    layer = nn.Linear(3, 5)
    assert isinstance(norm.wrap(layer), nn.Module)
    assert isinstance(norm.feature(8), nn.Module)
    assert isinstance(norm.feature(8, spatial=False), nn.Module)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"name": "group", "num_groups": 0}, "num_groups"),
        ({"name": "spectral", "n_power_iterations": 0}, "n_power_iterations"),
        ({"name": "spectral", "n_power_iteration": 2}, "n_power_iteration"),
        ({"name": "batch", "momentun": 0.1}, "momentun"),
        ({"name": "group", "groups": 4}, "groups"),
        ({"name": "none", "eps": 1e-5}, "eps"),
        ({"name": "weight", "dim": 0}, "dim"),
    ],
)
def test_invalid_norm_options_raise_config_error(cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_norm(cfg)


# ---------------------------------------------------------------- spectral


@pytest.mark.parametrize("kind", ["linear", "conv", "deconv"])
def test_spectral_norm_gives_unit_sigma_against_svd(kind, seeded):
    layer, x = make_layer(kind)
    with torch.no_grad():
        layer.weight.mul_(10.0)
    assert top_singular_value(weight_matrix(layer)) > 5  # far from 1 before wrapping
    layer = build_norm({"name": "spectral", "n_power_iterations": 1}).wrap(layer)
    layer.train()
    for _ in range(30):
        layer(x)
    layer.eval()  # eval: W / sigma with the u, v estimated so far, no further iteration
    assert top_singular_value(weight_matrix(layer)) == pytest.approx(1.0, abs=1e-3)


def test_spectral_norm_with_more_iterations_is_tighter(seeded):
    layer, x = make_layer("conv")
    layer = build_norm({"name": "spectral", "n_power_iterations": 10}).wrap(layer)
    for _ in range(10):
        layer(x)
    layer.eval()
    assert top_singular_value(weight_matrix(layer)) == pytest.approx(1.0, abs=1e-4)


def test_spectral_transposed_conv_is_normalized_over_dim_1(seeded):
    # torch's guarantee for ConvTranspose2d: sigma of weight.transpose(0, 1) reshaped to
    # (out, in * kh * kw) is 1.  (The (in, -1) reshape is a different matrix.)
    layer, x = make_layer("deconv")
    layer = build_norm("spectral").wrap(layer)
    assert layer.parametrizations.weight[0].dim == 1
    for _ in range(30):
        layer(x)
    layer.eval()
    w = layer.weight.detach().numpy()
    assert top_singular_value(np.swapaxes(w, 0, 1).reshape(w.shape[1], -1)) == pytest.approx(
        1.0, abs=1e-3
    )


def slow_spectrum_weight() -> torch.Tensor:
    """(12, 8) with sigma_1 / sigma_2 = 1.01: power iteration converges slowly."""
    g = torch.Generator().manual_seed(1)
    q1, _ = torch.linalg.qr(torch.randn(12, 12, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    s = torch.tensor([2.0, 1.98, 1.5, 1.0, 0.5, 0.3, 0.2, 0.1])
    return q1[:, :8] @ torch.diag(s) @ q2.T


@pytest.mark.parametrize("k", [1, 5])
def test_spectral_n_power_iterations_is_honoured(k, seeded):
    # one training-mode forward runs exactly k power-iteration steps: compare u, v with
    # k steps done by hand in numpy from the u, v the layer held before the forward
    weight = slow_spectrum_weight()
    layer = nn.Linear(8, 12)
    with torch.no_grad():
        layer.weight.copy_(weight)
    layer = build_norm({"name": "spectral", "n_power_iterations": k}).wrap(layer)
    sn = layer.parametrizations.weight[0]
    assert sn.n_power_iterations == k
    u, v = sn._u.double().numpy().copy(), sn._v.double().numpy().copy()
    layer(torch.randn(3, 8))
    w = weight.double().numpy()
    u_one = w @ v / np.linalg.norm(w @ v)  # where a single step would land
    for _ in range(k):
        u = w @ v / np.linalg.norm(w @ v)
        v = w.T @ u / np.linalg.norm(w.T @ u)
    np.testing.assert_allclose(sn._u.double().numpy(), u, atol=1e-5)
    np.testing.assert_allclose(sn._v.double().numpy(), v, atol=1e-5)
    if k > 1:  # the steps are distinguishable on this slowly converging matrix
        assert np.abs(u - u_one).max() > 1e-3


def test_spectral_eval_mode_does_not_iterate(seeded):
    layer, x = make_layer("linear")
    layer = build_norm("spectral").wrap(layer).eval()
    u = layer.parametrizations.weight[0]._u.clone()
    layer(x)
    assert torch.equal(layer.parametrizations.weight[0]._u, u)


def test_spectral_norm_is_a_parametrization_with_u_v_buffers():
    layer = build_norm("spectral").wrap(nn.Conv2d(3, 4, 3))
    names = dict(layer.named_buffers())
    assert set(names) == {"parametrizations.weight.0._u", "parametrizations.weight.0._v"}
    assert "parametrizations.weight.original" in dict(layer.named_parameters())


def test_spectral_leaves_unweighted_modules_alone():
    relu = nn.ReLU()
    assert build_norm("spectral").wrap(relu) is relu


def test_deepcopy_of_spectral_model_carries_u_v(seeded):
    spec = ModelSpec(
        arch="dcgan",
        shape=(1, 32, 32),
        z_dim=8,
        width=0.0625,
        g_norm={"name": "none"},
        d_norm={"name": "spectral"},
    )
    _, D = build_models(spec)
    x = torch.randn(2, 1, 32, 32)
    for _ in range(3):
        D(x)  # move u, v away from their initial values
    clone = copy.deepcopy(D)
    bufs, clone_bufs = dict(D.named_buffers()), dict(clone.named_buffers())
    uv = [n for n in bufs if n.endswith(("._u", "._v"))]
    assert len(uv) == 2 * 8  # 7 convs + 1 linear, each with u and v
    assert set(clone_bufs) == set(bufs)
    for n in uv:
        assert torch.equal(bufs[n], clone_bufs[n])
        assert bufs[n].data_ptr() != clone_bufs[n].data_ptr()  # a copy, not shared
    D.eval()
    clone.eval()
    torch.testing.assert_close(D(x), clone(x))


# ---------------------------------------------------------------- weight norm


@pytest.mark.parametrize("kind", ["linear", "conv", "deconv"])
def test_weight_norm_row_norms_equal_g(kind, seeded):
    layer, x = make_layer(kind)
    layer = build_norm("weight").wrap(layer)
    g = layer.parametrizations.weight.original0
    # set g to arbitrary values: W must follow, ||W[i]|| = g[i] for every output unit i
    with torch.no_grad():
        g.copy_(torch.rand_like(g) * 3 + 0.1)
    w = layer.weight.detach().numpy()
    out_dim = 1 if kind == "deconv" else 0
    rows = np.moveaxis(w, out_dim, 0).reshape(w.shape[out_dim], -1)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), g.detach().numpy().ravel(), rtol=1e-5)
    expected_out = {"linear": 30, "conv": 6, "deconv": 4}[kind]
    assert g.numel() == expected_out
    assert layer(x).isfinite().all()


def test_weight_norm_starts_at_the_initial_weight(seeded):
    layer = nn.Linear(6, 5)
    before = layer.weight.detach().clone()
    layer = build_norm("weight").wrap(layer)
    torch.testing.assert_close(layer.weight.detach(), before)


# ---------------------------------------------------------------- feature norms


@pytest.mark.parametrize(
    ("num_groups", "channels", "expected"),
    [(32, 64, 32), (32, 48, 24), (32, 12, 12), (4, 7, 1), (3, 9, 3), (5, 12, 4), (1, 8, 1)],
)
def test_group_norm_falls_back_to_a_divisor(num_groups, channels, expected):
    module = build_norm({"name": "group", "num_groups": num_groups}).feature(channels)
    assert isinstance(module, nn.GroupNorm)
    assert module.num_groups == expected
    assert channels % module.num_groups == 0


def _stats_axes(name: str, spatial: bool):
    """Axes over which a fresh (gain 1, bias 0) norm output has mean 0 and variance 1."""
    if name == "batch":
        return (0, 2, 3) if spatial else (0,)
    if name == "instance":
        return (2, 3) if spatial else (1,)
    return (1, 2, 3) if spatial else (1,)  # layer


@pytest.mark.parametrize("spatial", [True, False], ids=["maps", "vectors"])
@pytest.mark.parametrize("name", FEATURE_NORMS)
def test_feature_norm_normalizes_the_right_axes(name, spatial, seeded):
    c = 8
    x = torch.randn(6, c, 4, 4) * 3 + 2 if spatial else torch.randn(6, c) * 3 + 2
    norm = build_norm({"name": name, "num_groups": 4} if name == "group" else name)
    module = norm.feature(c, spatial=spatial).train()
    y = module(x).detach().double()
    assert y.shape == x.shape
    assert sum(p.numel() for p in module.parameters()) == 2 * c  # per-channel affine
    if name == "group":  # 4 groups of 2 channels: statistics per (sample, group)
        grouped = y.reshape(6, 4, -1)
        mean, var = grouped.mean(-1), grouped.var(-1, unbiased=False)
    else:
        axes = _stats_axes(name, spatial)
        mean, var = y.mean(axes), y.var(axes, unbiased=False)
    # normalized by sqrt(var + eps), so the output variance is var / (var + eps), not 1
    raw = x.double()
    if name == "group":
        raw_var = raw.reshape(6, 4, -1).var(-1, unbiased=False)
    else:
        raw_var = raw.var(_stats_axes(name, spatial), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, raw_var / (raw_var + 1e-5), atol=1e-4, rtol=0)


def test_batch_norm_is_the_only_norm_using_batch_statistics():
    for name in ALL_NORMS:
        assert uses_batch_stats(build_norm(name).feature(4)) == (name == "batch")


@pytest.mark.parametrize("name", ["none", "spectral", "weight"])
def test_weight_norms_add_no_feature_module(name):
    assert isinstance(build_norm(name).feature(4), nn.Identity)


@pytest.mark.parametrize("name", [*FEATURE_NORMS, "none"])
def test_feature_norms_do_not_touch_weights(name):
    layer = nn.Conv2d(2, 3, 3)
    assert build_norm(name).wrap(layer) is layer
    assert not hasattr(layer, "parametrizations")


def test_group_norm_on_vectors_keeps_at_least_two_channels_per_group():
    """One channel per group on (N, C) maps every input to the bias: a dead layer."""
    import torch

    from gansn.nn.norms import build_norm

    gn = build_norm({"name": "group", "num_groups": 32}).feature(8, spatial=False)
    assert gn.num_groups == 4
    x = torch.randn(5, 8, requires_grad=True)
    gn(x).pow(2).sum().backward()
    assert x.grad.abs().sum() > 0
