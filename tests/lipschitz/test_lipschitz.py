"""Lipschitz tracking against independent references (dense matrices, SVD, FFT)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from gansn.lipschitz import (
    LipschitzError,
    LipschitzTracker,
    circular_conv_singular_values,
    format_table,
    layer_names,
    lipschitz_report,
    readable_name,
    singular_value_spectra,
)
from gansn.nn import ModelSpec, build_models
from gansn.nn.layers import SumPool2d

NORMS = ["none", "spectral", "weight", "batch", "instance", "layer", "group"]
ARCHS = {"dcgan": (1, 32, 32), "resnet": (1, 32, 32), "mlp": (2,)}


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny convs on a shared 2-core box: thread hand-offs cost 100x the work
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def dense_matrix(fn, in_shape: tuple[int, ...]) -> np.ndarray:
    """The explicit matrix of a linear map on (1, *in_shape) inputs, column by column."""
    d = math.prod(in_shape)
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *in_shape)
    with torch.no_grad():
        cols = fn(basis).reshape(d, -1)
    return cols.T.numpy()


def top_sv(a: np.ndarray) -> float:
    return float(np.linalg.svd(a, compute_uv=False)[0])


def single(layer: nn.Module, shape: tuple[int, ...], n_iter: int = 500) -> dict:
    tracker = LipschitzTracker(nn.Sequential(layer), shape, n_iter=n_iter, n_iter_init=n_iter)
    tracker.measure()
    return tracker.table()[0]


# -- per-layer norms -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["conv", "deconv", "linear", "conv_sn", "deconv_wn"])
def test_sigma_matrix_matches_svd(kind):
    torch.manual_seed(0)
    if kind.startswith("conv"):
        layer, shape = nn.Conv2d(4, 6, 3, padding=1), (4, 8, 8)
    elif kind.startswith("deconv"):
        layer, shape = nn.ConvTranspose2d(5, 3, 4, 2, 1), (5, 4, 4)
    else:
        layer, shape = nn.Linear(7, 5), (7,)
    if kind.endswith("_sn"):
        layer = parametrizations.spectral_norm(layer)
    if kind.endswith("_wn"):
        layer = parametrizations.weight_norm(layer, dim=1)
    with torch.no_grad():
        layer.eval()
        w = layer.weight.detach().double()
        layer.train()
    if isinstance(layer, nn.ConvTranspose2d):  # (in, out, k, k) -> (out, in*k*k)
        w = w.permute(1, 0, 2, 3)
    expected = top_sv(w.reshape(w.shape[0], -1).numpy())
    assert single(layer, shape)["sigma_matrix"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("case", ["pad1_stride1", "k4_stride2", "deconv", "linear", "k3_s2"])
def test_sigma_operator_matches_dense_matrix(case):
    torch.manual_seed(1)
    layer, shape = {
        "pad1_stride1": (nn.Conv2d(2, 3, 3, 1, 1, bias=False), (2, 8, 8)),
        "k4_stride2": (nn.Conv2d(2, 4, 4, 2, 1, bias=False), (2, 8, 8)),
        "deconv": (nn.ConvTranspose2d(3, 2, 4, 2, 1, bias=False), (3, 4, 4)),
        "linear": (nn.Linear(6, 4, bias=False), (6,)),
        "k3_s2": (nn.Conv2d(1, 2, 3, 2, 1, bias=False), (1, 8, 8)),
    }[case]
    expected = top_sv(dense_matrix(lambda x: layer.double()(x), shape))
    layer.float()
    row = single(layer, shape)
    assert row["sigma_operator"] == pytest.approx(expected, rel=1e-3)
    assert row["in_shape"] == (2, *shape)


def test_circular_conv_fft_matches_dense_and_power_iteration():
    """Sedghi et al. (2019): per-frequency singular values give the whole spectrum."""
    torch.manual_seed(2)
    n = 8
    layer = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", bias=False)
    dense = np.linalg.svd(dense_matrix(lambda x: layer.double()(x), (3, n, n)), compute_uv=False)
    fft = circular_conv_singular_values(layer.weight.detach(), n).numpy()
    np.testing.assert_allclose(fft, dense[: fft.size], rtol=1e-8, atol=1e-10)
    layer.float()
    assert single(layer, (3, n, n))["sigma_operator"] == pytest.approx(fft[0], rel=1e-3)


def test_operator_norm_of_3x3_conv_exceeds_matrix_norm():
    torch.manual_seed(3)
    row = single(nn.Conv2d(8, 8, 3, padding=1), (8, 16, 16))
    assert row["sigma_operator"] > 1.2 * row["sigma_matrix"]
    assert row["sigma_operator"] <= 3 * row["sigma_matrix"] * (1 + 1e-4)


@pytest.mark.parametrize(
    "module, shape, exact",
    [
        (nn.AvgPool2d(2), (2, 8, 8), True),
        (nn.AvgPool2d(4), (1, 8, 8), True),
        (nn.AvgPool2d(3, stride=1), (1, 6, 6), False),  # overlapping: Schur bound only
        (SumPool2d(), (2, 4, 6), True),
        (nn.Upsample(scale_factor=2, mode="nearest"), (2, 3, 3), True),
        (nn.MaxPool2d(2), (1, 4, 4), True),
    ],
)
def test_fixed_layer_constants_vs_dense(module, shape, exact):
    row = single(module, shape)
    if isinstance(module, nn.MaxPool2d):  # piecewise linear: Jacobian at a generic point
        x = torch.randn(1, *shape, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda t: module(t).flatten(), x)
        reference = top_sv(jac.reshape(jac.shape[0], -1).numpy())
    else:
        reference = top_sv(dense_matrix(module, shape))
    if exact:
        assert row["lip_operator"] == pytest.approx(reference, rel=1e-9)
    else:
        assert row["lip_operator"] >= reference * (1 - 1e-9)


def test_batchnorm_eval_gain_vs_closed_form_and_jacobian():
    torch.manual_seed(4)
    bn = nn.BatchNorm2d(5, eps=1e-3)
    with torch.no_grad():
        bn.weight.uniform_(-2, 2)
        bn.running_var.uniform_(0.1, 3)
        bn.running_mean.normal_()
    bn.eval()
    closed = (bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)).max().item()
    bn64 = bn.double()
    dense = top_sv(dense_matrix(lambda x: bn64(x) - bn64(0 * x), (5, 2, 2)))
    bn.float()
    tracker = LipschitzTracker(nn.Sequential(bn), (5, 2, 2), bound_mode="eval")
    out = tracker.measure(torch.randn(6, 5, 2, 2))
    row = tracker.table()[0]
    assert row["gain_eval"] == pytest.approx(closed, rel=1e-6)
    assert row["gain_eval"] == pytest.approx(dense, rel=1e-6)
    assert row["gain_worst"] == pytest.approx(bn.weight.abs().max().item() / math.sqrt(1e-3))
    assert out["lipschitz/upper_operator"] == pytest.approx(closed, rel=1e-6)
    assert out["lipschitz/bound_train_mode"] == 0.0
    # train mode: worst case, and the batch gain is a Jacobian norm below it
    tracker = LipschitzTracker(nn.Sequential(bn), (5, 2, 2), bound_mode="train")
    out = tracker.measure(torch.randn(6, 5, 2, 2))
    assert out["lipschitz/upper_operator"] == pytest.approx(row["gain_worst"])
    assert 0 < out["sigma/d/bn/gain_batch"] <= row["gain_worst"]


@pytest.mark.parametrize(
    "norm, shape",
    [
        (nn.LayerNorm(6), (6,)),
        (nn.GroupNorm(2, 4), (4, 2, 2)),
        (nn.InstanceNorm2d(3, affine=True), (3, 2, 2)),
        (nn.BatchNorm2d(3), (3, 2, 2)),
    ],
    ids=["layer", "group", "instance", "batch"],
)
def test_gain_batch_matches_dense_jacobian(norm, shape):
    torch.manual_seed(5)
    with torch.no_grad():
        norm.weight.uniform_(-2, 2)
    x = torch.randn(3, *shape)
    tracker = LipschitzTracker(
        nn.Sequential(norm), shape, n_iter=300, n_iter_init=300, bound_mode="train"
    )
    tracker.measure(x)
    row = tracker.table()[0]

    def fn(t):  # batch norm with this batch's statistics, running stats untouched
        if isinstance(norm, nn.BatchNorm2d):
            return nn.functional.batch_norm(t, None, None, norm.weight, norm.bias, True)
        return norm(t)

    jac = torch.autograd.functional.jacobian(fn, x)
    reference = top_sv(jac.reshape(x.numel(), x.numel()).double().numpy())
    assert row["gain_batch"] == pytest.approx(reference, rel=1e-3)
    assert row["gain_batch"] <= row["gain_worst"]
    assert row["lip_operator"] == row["gain_worst"]


# -- spectral norm DCGAN ---------------------------------------------------------------------


def test_spectral_dcgan_matrix_norms_are_one_operator_norms_are_not():
    torch.manual_seed(6)
    # 20 train-mode forwards run torch's power iteration 100 times (plus 15 at wrap time);
    # with 1 step per forward, 20 forwards leave some 16->16 convs ~1.3% above sigma = 1
    _, D = build_models(
        ModelSpec(
            arch="dcgan",
            shape=(3, 32, 32),
            z_dim=8,
            width=0.25,
            d_norm={"name": "spectral", "n_power_iterations": 5},
        )
    )
    with torch.no_grad():
        for _ in range(20):
            D(torch.randn(4, 3, 32, 32))
    tracker = LipschitzTracker(D, (3, 32, 32), n_iter_init=200)
    tracker.measure()
    rows = [r for r in tracker.table() if r["sigma_matrix"] is not None]
    assert len(rows) == 8
    for r in rows:
        assert r["sigma_matrix"] == pytest.approx(1.0, abs=1e-2), r
        assert r["raw_sigma"] > 0
    convs3 = [
        r
        for r in rows
        if r["type"].startswith("Conv2d") and D.get_submodule(r["path"]).kernel_size == (3, 3)
    ]
    assert len(convs3) == 4
    for r in convs3:
        assert r["sigma_operator"] > 1.05, r


# -- the invariant: lower bounds <= upper_operator ----------------------------------------------


def _perturb(D: nn.Module, shape: tuple[int, ...], steps: int = 3) -> None:
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    for _ in range(steps):
        real, fake = torch.randn(8, *shape) + 0.5, torch.randn(8, *shape)
        loss = torch.relu(1 - D(real)).mean() + torch.relu(1 + D(fake)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _check_invariant(out: dict[str, float]) -> None:
    upper = out["lipschitz/upper_operator"]
    assert math.isfinite(upper) and upper > 0
    lowers = {
        k: v
        for k, v in out.items()
        if k.startswith("lipschitz/grad_") or k in ("lipschitz/fd_ratio", "lipschitz/lower")
    }
    assert len(lowers) == 8
    for key, value in lowers.items():
        assert value <= upper * (1 + 1e-4) + 1e-7, (key, value, upper)


@pytest.mark.parametrize("trained", [False, True], ids=["random", "trained"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_lower_bounds_below_upper_operator(arch, norm, trained):
    torch.manual_seed(7)
    shape = ARCHS[arch]
    # mlp: a wider hidden layer so group norm gets groups of several features
    width = 0.0625 if arch != "mlp" else 0.25
    _, D = build_models(
        ModelSpec(arch=arch, shape=shape, z_dim=4, width=width, d_norm={"name": norm})
    )
    if trained:
        _perturb(D, shape)
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(6, *shape, generator=gen) + 0.5
    fake = torch.randn(6, *shape, generator=gen)
    for mode in ("eval", "train"):  # eval: BN at its running-stat gain; train: worst case
        tracker = LipschitzTracker(D, shape, n_iter_init=50, bound_mode=mode)
        out = tracker.measure(real, fake)
        _check_invariant(out)
        assert out["lipschitz/upper_matrix"] > 0
        assert out["lipschitz/bound_valid"] == 1.0


def test_bound_is_tight_for_a_linear_discriminator():
    torch.manual_seed(8)
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    out = LipschitzTracker(D, (3, 2, 2)).measure(torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    w = D[1].weight.detach().norm().item()
    assert out["lipschitz/upper_operator"] == pytest.approx(w, rel=1e-6)
    for key in ("grad_real_max", "grad_fake_mean", "grad_interp_max", "fd_ratio"):
        assert out[f"lipschitz/{key}"] == pytest.approx(w, rel=1e-4)
    _check_invariant(out)


def test_generator_with_vector_output():
    torch.manual_seed(9)
    G, _ = build_models(
        ModelSpec(arch="dcgan", shape=(1, 16, 16), z_dim=4, width=0.0625, g_norm={"name": "batch"})
    )
    opt = torch.optim.SGD(G.parameters(), lr=0.1)
    G(torch.randn(4, 4)).square().mean().backward()
    opt.step()
    tracker = LipschitzTracker(G, (4,), prefix="g", n_iter_init=50)
    out = tracker.measure(torch.randn(5, 4), torch.randn(5, 4))
    _check_invariant(out)
    assert "sigma/g/linear/matrix" in out  # the latent linear
    assert "sigma/g/bn1/gain_eval" in out  # batch norm after the Unflatten
    assert "sigma/g/deconv1_4x4_s2/operator" in out


# -- behaviour the trainer relies on ---------------------------------------------------------------


def _spec(norm: str, arch: str = "dcgan") -> ModelSpec:
    return ModelSpec(arch=arch, shape=ARCHS[arch], z_dim=4, width=0.0625, d_norm={"name": norm})


def test_measure_leaves_model_and_global_rng_untouched():
    torch.manual_seed(10)
    for norm in ("spectral", "batch"):
        _, D = build_models(_spec(norm))
        D.train()
        before = {k: v.clone() for k, v in D.state_dict().items()}
        real, fake = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
        rng = torch.get_rng_state()
        tracker = LipschitzTracker(D, (1, 32, 32), n_iter_init=10)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = tracker.measure(real, fake)
        assert torch.equal(rng, torch.get_rng_state())
        assert all(m.training for m in D.modules())
        for k, v in D.state_dict().items():
            assert torch.equal(v, before[k]), k
        assert all(p.grad is None for p in D.parameters())
        assert out["lipschitz/bound_train_mode"] == 1.0  # auto: D was in train mode


def test_fp32_under_autocast():
    torch.manual_seed(11)
    _, D = build_models(_spec("spectral"))
    x = torch.randn(4, 1, 32, 32)
    a = LipschitzTracker(D, (1, 32, 32), n_iter_init=20).measure(x, x.flip(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        b = LipschitzTracker(D, (1, 32, 32), n_iter_init=20).measure(x, x.flip(0))
    assert a == b


def test_state_dict_resume_is_exact():
    torch.manual_seed(12)
    _, D = build_models(_spec("batch", "resnet"))
    x, y = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
    a = LipschitzTracker(D, (1, 32, 32), n_iter=2, n_iter_init=5)
    a.measure(x, y)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = LipschitzTracker(D, (1, 32, 32), n_iter=2, n_iter_init=5, seed=123)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert a.measure(x, y) == b.measure(x, y)


def test_persistent_vectors_converge_with_few_steps_per_call():
    torch.manual_seed(13)
    layer = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    expected = top_sv(dense_matrix(lambda x: layer.double()(x), (4, 6, 6)))
    layer.float()
    tracker = LipschitzTracker(nn.Sequential(layer), (4, 6, 6), n_iter=2, n_iter_init=2)
    first = tracker.measure()["sigma/d/conv_3x3/operator"]
    for _ in range(150):
        out = tracker.measure()
    assert first < out["sigma/d/conv_3x3/operator"]
    assert out["sigma/d/conv_3x3/operator"] == pytest.approx(expected, rel=1e-3)


def test_tags_and_names():
    _, D = build_models(_spec("group", "resnet"))
    tracker = LipschitzTracker(D, (1, 32, 32), n_iter_init=5)
    out = tracker.measure(torch.randn(3, 1, 32, 32))
    # names say what the layer is: block, shortcut, kind, number, kernel and stride
    assert "sigma/d/block1/conv1_3x3/matrix" in out
    assert "sigma/d/block1/shortcut_conv_1x1/matrix" in out
    assert "sigma/d/block2/conv1_3x3/operator" in out
    assert "sigma/d/block2/gn1/gain_worst" in out
    assert "sigma/d/block2/gn1/gain_batch" in out
    assert "sigma/d/linear/matrix" in out  # the final linear
    assert "lipschitz/grad_real_max" in out and "lipschitz/grad_fake_max" not in out
    assert readable_name("net.1.residual.2") == "net1/residual2"
    text = format_table(tracker.table())
    assert "block2/conv1_3x3" in text and "Conv2d" in text


def test_layer_names_of_the_dcgan_discriminator():
    _, D = build_models(ModelSpec(arch="dcgan", shape=(1, 32, 32), z_dim=4, width=0.0625))
    weighted = [n for p, n in layer_names(D).items() if hasattr(D.get_submodule(p), "weight")]
    assert weighted == [
        "conv1_3x3",
        "conv2_4x4_s2",
        "conv3_3x3",
        "conv4_4x4_s2",
        "conv5_3x3",
        "conv6_4x4_s2",
        "conv7_3x3",
        "linear",
    ]
    names = list(layer_names(D).values())
    assert len(set(names)) == len(names)


def test_unknown_module_raises_or_marks_bound_invalid():
    class Weird(nn.Module):
        def forward(self, x):
            return x * 2

    D = nn.Sequential(nn.Linear(3, 3), Weird(), nn.Linear(3, 1))
    with pytest.raises(LipschitzError, match="Weird"):
        LipschitzTracker(D, (3,))
    with pytest.warns(UserWarning, match="invalid"):
        tracker = LipschitzTracker(D, (3,), strict=False)
    out = tracker.measure(torch.randn(4, 3))
    assert out["lipschitz/bound_valid"] == 0.0
    assert math.isnan(out["lipschitz/upper_operator"])
    assert out["lipschitz/grad_real_max"] > 0


def test_every_registered_norm_declares_the_modules_it_builds():
    """No closed list: each built-in norm's own ``lipschitz`` rules cover what it builds."""
    from gansn.lipschitz.rules import fixed_rule, norm_rule
    from gansn.nn import build_norm

    for name in NORMS:
        norm = build_norm(name)
        for spatial in (True, False):
            m = norm.feature(8, spatial)
            assert norm_rule(m) is not None or fixed_rule(m) is not None, (name, m)
        kinds = {rule.kind for rule in type(norm).lipschitz}
        assert kinds <= {"weight", "feature"}, name
        # a weight norm keeps the layer a conv/linear, measured on its effective weight
        assert ("weight" in kinds) == (name in ("spectral", "weight"))


class _StandardizeRows(nn.Module):
    """A user's layer norm that is not ``nn.LayerNorm``: (N, C) -> (N, C)."""

    def __init__(self, c: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.linspace(-2.0, 1.0, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps)


def test_a_norm_declaring_a_feature_rule_gets_gains_for_its_own_module():
    """A plugin's standardizing module under ``LipschitzRule.feature_norm``: the worst-case
    gain max|w|/sqrt(eps) enters the bound, and gain_batch (from the module's own forward)
    matches numpy's SVD of the per-sample dense Jacobians."""
    from gansn.nn import NORMS as REGISTERED
    from gansn.nn import LipschitzRule, Norm

    @REGISTERED.register("test_standardize_rows")
    class _Rows(Norm):
        lipschitz = (LipschitzRule.feature_norm(_StandardizeRows),)

    try:
        torch.manual_seed(0)
        D = nn.Sequential(nn.Linear(4, 6), _StandardizeRows(6, 0.05), nn.ReLU(), nn.Linear(6, 1))
        x = torch.randn(8, 4)
        rows, out = lipschitz_report(D, (4,), real=x, n_iter=300)
        row = next(r for r in rows if r["path"] == "1")
        worst = 2.0 / math.sqrt(0.05)
        assert row["gain_worst"] == pytest.approx(worst, rel=1e-6)
        assert row["lip_operator"] == pytest.approx(worst, rel=1e-6)
        W1, W2 = (D[i].weight.detach().double().numpy() for i in (0, 3))
        assert out["lipschitz/bound_valid"] == 1.0
        assert out["lipschitz/upper_operator"] == pytest.approx(
            top_sv(W1) * worst * top_sv(W2), rel=1e-5
        )
        ref = D[1].double()
        with torch.no_grad():
            h = D[0].double()(x.double())
        jac = [
            torch.autograd.functional.jacobian(ref, h[i : i + 1]).reshape(6, 6).numpy()
            for i in range(len(h))
        ]
        assert row["gain_batch"] == pytest.approx(max(map(top_sv, jac)), rel=1e-3)
        assert row["gain_batch"] <= worst
    finally:
        REGISTERED._entries.pop("test_standardize_rows", None)


def test_singular_value_spectra_match_numpy():
    torch.manual_seed(14)
    _, D = build_models(_spec("weight"))
    spectra = singular_value_spectra(D)
    assert len(spectra) == 8 and next(iter(spectra)) == "conv1_3x3"
    w = D.net[0].weight.detach().double()
    s = np.linalg.svd(w.reshape(w.shape[0], -1).numpy(), compute_uv=False)
    np.testing.assert_allclose(spectra["conv1_3x3"], s / s[0], rtol=1e-6)
    raw = singular_value_spectra(D, normalized=False)
    np.testing.assert_allclose(raw["conv1_3x3"], s, rtol=1e-6)


def test_plot_singular_value_spectra(tmp_path):
    pytest.importorskip("matplotlib")
    from gansn.lipschitz import plot_singular_value_spectra

    spectra = {}
    for norm in ("spectral", "weight"):
        _, D = build_models(_spec(norm))
        spectra[norm] = singular_value_spectra(D)
    fig = plot_singular_value_spectra(spectra, tmp_path / "sv.png")
    assert (tmp_path / "sv.png").stat().st_size > 1000
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 8


def test_report_api_and_cli(monkeypatch, capsys):
    from gansn.cli import lipschitz as cli

    spec = _spec("spectral")
    G, D = build_models(spec)
    rows, values = lipschitz_report(D, (1, 32, 32), n_iter=20)
    assert rows and values["lipschitz/upper_operator"] > 0
    monkeypatch.setattr(cli, "_load_models", lambda path: (G, D.eval(), spec, {}))
    cli.main(["ckpt=whatever", "n_iter=10", "n=4", "g=true"])
    text = capsys.readouterr().out
    assert "sigma_operator" in text and "lipschitz/upper_operator" in text
    assert "== G" in text and "lipschitz/fd_ratio" in text
    with pytest.raises(SystemExit):
        cli.main(["ckpt=x", "bogus=1"])


def test_cli_and_sv_script_on_a_saved_checkpoint(tmp_path, capsys):
    """End to end through the real checkpoint loader (gansn.checkpoint.load_models)."""
    pytest.importorskip("matplotlib")
    import importlib.util
    from pathlib import Path

    from gansn import checkpoint
    from gansn.cli.lipschitz import main

    paths = []
    for norm in ("spectral", "weight"):
        spec = _spec(norm)
        G, D = build_models(spec)
        path = tmp_path / f"{norm}.pt"
        checkpoint.save_checkpoint(
            {
                "step": 0,
                "spec": spec.to_dict(),
                "models": {"G": G.state_dict(), "D": D.state_dict()},
            },
            path,
        )
        paths.append(path)
    main([f"ckpt={paths[0]}", "n_iter=5", "n=4"])
    text = capsys.readouterr().out
    assert "Conv2d+SpectralNormFP32" in text and "lipschitz/upper_operator" in text

    script = Path(__file__).resolve().parents[2] / "scripts" / "sv_spectrum.py"
    spec_ = importlib.util.spec_from_file_location("sv_spectrum", script)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    out = tmp_path / "sv.png"
    module.main([f"{paths[0]}=SN", f"{paths[1]}=WN", "--out", str(out)])
    assert out.stat().st_size > 1000


def test_cli_measures_the_lower_bounds_the_run_logged(tmp_path, capsys):
    """gansn-lipschitz uses the training hook's inputs: its real and fake gradient norms
    equal the run's last logged ones."""
    from gansn.cli.lipschitz import main
    from gansn.config import compose, to_plain
    from gansn.training import train
    from gansn.training.rundir import read_jsonl

    cfg = to_plain(
        compose(
            [
                "experiment=toy_ring8",
                "steps=4",
                "batch_size=16",
                "dataset.n=256",
                "grid.n=16",
                "model.options.hidden=8",
                "lipschitz_every=4",
                "lipschitz.n_samples=16",
                "seed=3",
            ]
        )
    )
    train(cfg, tmp_path / "run")
    logged = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "lipschitz/lower" in r]
    main([f"ckpt={tmp_path / 'run'}", "n_iter=5"])
    text = capsys.readouterr().out
    assert "lower bounds on 16 samples (seed 3): the run's fixed real batch" in text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("lipschitz/")
    }
    for key in ("grad_real_max", "grad_real_mean", "grad_fake_max", "grad_fake_mean"):
        assert values[f"lipschitz/{key}"] == pytest.approx(logged[-1][f"lipschitz/{key}"], rel=1e-5)
    assert "lipschitz/grad_interp_max" in values
