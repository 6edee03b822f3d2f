"""Architectures: every arch x norm builds and trains a step; layouts match the SNGAN paper.

Expected layer lists and parameter counts are written out by hand from the paper's tables
(Miyato et al. 2018, Tables 3-4) and Mimicry's SNGAN-32, not derived from the code.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch import nn

from gansn.errors import ConfigError
from gansn.nn import NORMS, ModelSpec, build_discriminator, build_generator, build_models
from gansn.nn.layers import ResBlock

NORM_NAMES = NORMS.names()
TINY = 0.0625

SHAPES = {
    "dcgan": [(c, s, s) for s in (32, 48, 64) for c in (1, 3)],
    "resnet": [(3, s, s) for s in (32, 48, 64)],
    "mlp": [(2,)],
}
# every (arch, shape) runs all 7 norms on G and all 7 on D, paired differently per shape
CASES = [
    pytest.param(
        arch,
        shape,
        g,
        NORM_NAMES[(i + 1 + k) % len(NORM_NAMES)],
        id=f"{arch}-{'x'.join(map(str, shape))}-G{g}-D{NORM_NAMES[(i + 1 + k) % 7]}",
    )
    for arch, shapes in SHAPES.items()
    for k, shape in enumerate(shapes)
    for i, g in enumerate(NORM_NAMES)
]


def spec_for(
    arch: str, shape, g_norm: str = "none", d_norm: str = "none", width: float = TINY, **options
) -> ModelSpec:
    return ModelSpec(
        arch=arch,
        shape=tuple(shape),
        z_dim=8,
        width=width,
        g_norm={"name": g_norm},
        d_norm={"name": d_norm},
        options=options,
    )


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Conv / deconv / linear layers in forward order (parametrized ones included)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def raw_weight(layer: nn.Module) -> torch.Tensor:
    """The stored weight, before any reparametrization."""
    if hasattr(layer, "parametrizations"):
        return layer.parametrizations.weight.original
    return layer.weight


# ---------------------------------------------------------------- every arch x norm


@pytest.mark.parametrize(("arch", "shape", "g_norm", "d_norm"), CASES)
def test_arch_norm_builds_runs_and_backprops(arch, shape, g_norm, d_norm, seeded):
    G, D = build_models(spec_for(arch, shape, g_norm, d_norm))
    n = 3
    z = torch.randn(n, 8)
    fake = G(z)
    assert fake.shape == (n, *shape)
    if len(shape) == 3:  # images end in tanh
        assert fake.abs().max() <= 1.0
    real = torch.rand(n, *shape) * 2 - 1
    d_real, d_fake = D(real), D(fake)
    assert d_real.shape == d_fake.shape == (n,)
    (d_real.mean() - d_fake.mean()).backward()
    for model in (G, D):
        for name, p in model.named_parameters():
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    # eval mode (running statistics, frozen u/v) gives finite outputs of the same shapes
    G.eval()
    D.eval()
    with torch.no_grad():
        assert torch.isfinite(D(G(z))).all()


def test_cases_cover_every_norm_on_both_sides_for_every_arch_and_shape():
    for arch, shapes in SHAPES.items():
        for shape in shapes:
            rows = [p.values for p in CASES if p.values[:2] == (arch, shape)]
            assert {r[2] for r in rows} == set(NORM_NAMES)
            assert {r[3] for r in rows} == set(NORM_NAMES)


@pytest.mark.parametrize("arch", ["dcgan", "resnet", "mlp"])
def test_generator_sample_latent(arch):
    G = build_generator(spec_for(arch, SHAPES[arch][0]))
    z = G.sample_latent(5, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 8)
    assert G.z_dim == 8 and G.shape == SHAPES[arch][0]


# ---------------------------------------------------------------- impossible shapes


@pytest.mark.parametrize(
    ("arch", "shape", "patterns"),
    [
        ("dcgan", (1, 28, 28), ["got 28", "multiple of 8", "dataset.img_size"]),
        ("dcgan", (3, 20, 20), ["got 20", "multiple of 8", "dataset.img_size"]),
        ("dcgan", (3, 8, 8), ["got 8", "at least 16", "dataset.img_size"]),
        ("resnet", (3, 40, 40), ["got 40", r"\[32, 48, 64\]", "dataset.img_size"]),
        ("resnet", (3, 96, 96), ["got 96", "dataset.img_size"]),
        ("mlp", (3, 32, 32), [r"\(3, 32, 32\)", "point data", "dcgan or resnet"]),
        ("dcgan", (2,), [r"shape \(2,\)", "mlp"]),
        ("resnet", (2,), [r"shape \(2,\)", "mlp"]),
        ("dcgan", (3, 32, 48), [r"\(3, 32, 48\)", "square"]),
    ],
)
@pytest.mark.parametrize("side", ["generator", "discriminator"])
def test_impossible_shapes_raise_config_error_naming_the_fix(arch, shape, patterns, side):
    build = build_generator if side == "generator" else build_discriminator
    with pytest.raises(ConfigError) as info:
        build(spec_for(arch, shape))
    for pattern in patterns:
        assert re.search(pattern, str(info.value)), f"{pattern!r} not in {info.value}"


def test_unknown_architecture_option_raises_config_error():
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_generator(spec_for("dcgan", (3, 32, 32), depth=4))
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_discriminator(spec_for("resnet", (3, 32, 32), init_std=0.02))


# ---------------------------------------------------------------- the paper's layouts


def conv_signature(layer: nn.Module) -> tuple:
    if isinstance(layer, nn.Linear):
        return ("linear", layer.in_features, layer.out_features)
    kind = "deconv" if isinstance(layer, nn.ConvTranspose2d) else "conv"
    return (kind, layer.kernel_size[0], layer.stride[0], layer.padding[0], layer.out_channels)


def test_dcgan_discriminator_layout_width_1():
    D = build_discriminator(spec_for("dcgan", (3, 32, 32), d_norm="spectral", width=1.0))
    # SNGAN Table 3(b), as (kind, kernel, stride, padding, out channels)
    assert [conv_signature(m) for m in weighted_layers(D)] == [
        ("conv", 3, 1, 1, 64),
        ("conv", 4, 2, 1, 128),
        ("conv", 3, 1, 1, 128),
        ("conv", 4, 2, 1, 256),
        ("conv", 3, 1, 1, 256),
        ("conv", 4, 2, 1, 512),
        ("conv", 3, 1, 1, 512),
        ("linear", 512 * 4 * 4, 1),
    ]
    assert weighted_layers(D)[0].in_channels == 3
    slopes = [m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.1] * 7
    # spectral norm on every weighted layer
    assert all(hasattr(m, "parametrizations") for m in weighted_layers(D))


def test_dcgan_generator_layout_width_1():
    G = build_generator(spec_for("dcgan", (3, 32, 32), g_norm="batch", width=1.0))
    # SNGAN Table 3(a): z -> 4x4x512 -> deconv4 s2 256 -> 128 -> 64 -> conv3 3 -> tanh
    assert [conv_signature(m) for m in weighted_layers(G)] == [
        ("linear", 8, 4 * 4 * 512),
        ("deconv", 4, 2, 1, 256),
        ("deconv", 4, 2, 1, 128),
        ("deconv", 4, 2, 1, 64),
        ("conv", 3, 1, 1, 3),
    ]
    unflatten = next(m for m in G.modules() if isinstance(m, nn.Unflatten))
    assert tuple(unflatten.unflattened_size) == (512, 4, 4)
    assert [m.num_features for m in G.modules() if isinstance(m, nn.BatchNorm2d)] == [
        512,
        256,
        128,
        64,
    ]
    assert isinstance(list(G.modules())[-1], nn.Tanh)


@pytest.mark.parametrize("name", ["batch", "layer"])
def test_dcgan_discriminator_never_normalizes_raw_pixels(name):
    D = build_discriminator(spec_for("dcgan", (3, 32, 32), d_norm=name, width=0.25))
    seq = list(D.net)
    assert isinstance(seq[0], nn.Conv2d) and isinstance(seq[1], nn.LeakyReLU)
    feats = [m for m in seq if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert len(feats) == 6  # after convs 2..7 only


# Mimicry SNGAN-32 / SNGAN Table 4, counted by hand:
#   G: linear 128 -> 4*4*256                        128*4096 + 4096          =   528,384
#      3 up-blocks 256 -> 256, each BN 512 + conv3 590,080 + BN 512 + conv3 590,080
#        + shortcut conv1 65,792                                  3 * 1,246,976 = 3,740,928
#      final BN 512 + conv3 256 -> 3 (6,912 + 3)                                 =     7,427
#                                                                         total  = 4,276,739
#   D: optimized block conv3 3->128 3,584 + conv3 147,584 + shortcut conv1 512   =   151,680
#      down block 128: conv3 147,584 x 2 + shortcut conv1 16,512                 =   311,680
#      2 blocks 128 (identity shortcut): 2 * 2 * 147,584                         =   590,336
#      linear 128 -> 1                                                           =       129
#                                                                         total  = 1,053,825
SNGAN32_G_PARAMS = 528_384 + 3 * (512 + 590_080 + 512 + 590_080 + 65_792) + 512 + 6_915
SNGAN32_D_PARAMS = (3_584 + 147_584 + 512) + (2 * 147_584 + 16_512) + 4 * 147_584 + 129


def test_sngan_resnet32_parameter_counts_match_mimicry():
    assert SNGAN32_G_PARAMS == 4_276_739 and SNGAN32_D_PARAMS == 1_053_825
    spec = ModelSpec(
        arch="resnet",
        shape=(3, 32, 32),
        z_dim=128,
        width=1.0,
        g_norm={"name": "batch"},
        d_norm={"name": "spectral"},
    )
    G, D = build_models(spec)
    assert n_params(G) == SNGAN32_G_PARAMS
    assert n_params(D) == SNGAN32_D_PARAMS
    # G's seven batch norms (2 per up-block, 1 final) hold 2 * 256 parameters each
    G_plain = build_generator(
        ModelSpec(arch="resnet", shape=(3, 32, 32), z_dim=128, g_norm={"name": "none"})
    )
    assert n_params(G_plain) == SNGAN32_G_PARAMS - 7 * 512


def test_sngan_resnet32_block_structure():
    G, D = build_models(spec_for("resnet", (3, 32, 32), "batch", "spectral", width=1.0))
    g_blocks = [m for m in G.modules() if isinstance(m, ResBlock)]
    d_blocks = [m for m in D.modules() if isinstance(m, ResBlock)]
    assert len(g_blocks) == 3 and len(d_blocks) == 4
    # D: optimized + down block have a learnable 1x1 shortcut, the last two are identity
    assert [len(b.shortcut) for b in d_blocks] == [2, 2, 0, 0]
    assert [sum(isinstance(m, nn.AvgPool2d) for m in b.residual) for b in d_blocks] == [1, 1, 0, 0]
    assert isinstance(list(D.net)[-1], nn.Linear)


@pytest.mark.parametrize(("size", "n_g_blocks", "n_d_blocks"), [(48, 3, 5), (64, 4, 5)])
def test_resnet_48_and_64_layouts(size, n_g_blocks, n_d_blocks):
    G, D = build_models(spec_for("resnet", (3, size, size), width=TINY))
    assert sum(isinstance(m, ResBlock) for m in G.modules()) == n_g_blocks
    assert sum(isinstance(m, ResBlock) for m in D.modules()) == n_d_blocks
    unflatten = next(m for m in G.modules() if isinstance(m, nn.Unflatten))
    bottom = {48: 6, 64: 4}[size]
    assert tuple(unflatten.unflattened_size)[1:] == (bottom, bottom)


# ---------------------------------------------------------------- width knob


def test_width_scales_dcgan_channels():
    D = build_discriminator(spec_for("dcgan", (3, 32, 32), width=0.25))
    assert [m.out_channels for m in weighted_layers(D)[:-1]] == [16, 32, 32, 64, 64, 128, 128]
    assert weighted_layers(D)[-1].in_features == 128 * 4 * 4
    G = build_generator(spec_for("dcgan", (3, 32, 32), width=0.25))
    layers = weighted_layers(G)
    assert layers[0].out_features == 128 * 16
    assert [m.out_channels for m in layers[1:]] == [64, 32, 16, 3]


def test_width_scales_resnet_and_mlp_channels():
    G, D = build_models(spec_for("resnet", (3, 32, 32), width=0.5))
    assert {m.out_channels for m in weighted_layers(D) if isinstance(m, nn.Conv2d)} == {64}
    assert {m.out_channels for m in weighted_layers(G)[1:-1]} == {128}
    G, D = build_models(spec_for("mlp", (2,), width=0.5))
    assert [m.out_features for m in weighted_layers(G)] == [64, 64, 64, 2]
    assert [m.out_features for m in weighted_layers(D)] == [64, 64, 64, 1]


def test_mlp_options_hidden_and_depth():
    G, D = build_models(spec_for("mlp", (2,), width=1.0, hidden=10, depth=2))
    assert [m.out_features for m in weighted_layers(G)] == [10, 10, 2]
    assert [m.out_features for m in weighted_layers(D)] == [10, 10, 1]


# ---------------------------------------------------------------- initialisation


@pytest.mark.parametrize(("norm", "std"), [("none", 0.02), ("spectral", 0.02), ("none", 0.05)])
def test_dcgan_weights_are_normal_with_configured_std(norm, std, seeded):
    options = {} if std == 0.02 else {"init_std": std}
    G, D = build_models(spec_for("dcgan", (3, 32, 32), norm, norm, width=0.25, **options))
    checked = 0
    for layer in weighted_layers(G) + weighted_layers(D):
        w = raw_weight(layer).detach()
        if w.numel() >= 4000:
            assert w.std().item() == pytest.approx(std, rel=0.1)
            assert abs(w.mean().item()) < 0.1 * std
            checked += 1
        assert torch.count_nonzero(layer.bias) == 0
    assert checked >= 8


def test_resnet_weights_are_xavier_uniform_with_sngan_gains(seeded):
    G, D = build_models(spec_for("resnet", (3, 32, 32), width=0.25))
    for model in (G, D):
        for name, layer in model.named_modules():
            if not isinstance(layer, (nn.Conv2d, nn.Linear)):
                continue
            w = layer.weight.detach()
            receptive = w[0, 0].numel() if w.dim() == 4 else 1
            fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
            # sngan_projection: gain sqrt(2) inside residual branches, 1 elsewhere
            gain = math.sqrt(2) if ".residual." in name else 1.0
            bound = gain * math.sqrt(6 / (fan_in + fan_out))
            assert w.abs().max().item() <= bound * (1 + 1e-6), name
            if w.numel() >= 2000:  # U(-b, b): max near b, std b / sqrt(3)
                assert w.abs().max().item() > 0.95 * bound, name
                assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1), name
            assert torch.count_nonzero(layer.bias) == 0, name


# ---------------------------------------------------------------- ModelSpec


def test_model_spec_round_trips_through_json():
    spec = ModelSpec(
        arch="dcgan",
        shape=(3, 32, 32),
        z_dim=128,
        width=0.5,
        g_norm={"name": "group", "num_groups": 8},
        d_norm={"name": "spectral", "n_power_iterations": 2},
        options={"init_std": 0.02},
    )
    d = spec.to_dict()
    assert d["shape"] == [3, 32, 32]
    again = ModelSpec.from_dict(json.loads(json.dumps(d)))
    assert again == spec
    assert again.shape == (3, 32, 32)
    assert spec.differences(again) == []


def test_model_spec_differences_name_changed_fields():
    a = ModelSpec(
        arch="dcgan",
        shape=(3, 32, 32),
        z_dim=128,
        width=1.0,
        g_norm={"name": "group", "num_groups": 32},
        d_norm={"name": "spectral", "n_power_iterations": 1},
        options={"init_std": 0.02},
    )
    b = ModelSpec(
        arch="dcgan",
        shape=(3, 32, 32),
        z_dim=128,
        width=0.5,
        g_norm={"name": "group", "num_groups": 16},
        d_norm={"name": "batch"},
        options={"init_std": 0.05},
    )
    assert sorted(a.differences(b)) == sorted(
        [
            "width: 1.0 -> 0.5",
            "g_norm.num_groups: 32 -> 16",
            "d_norm: spectral -> batch",
            "options.init_std: 0.02 -> 0.05",
        ]
    )
    c = ModelSpec(arch="resnet", shape=(3, 48, 48), z_dim=64)
    d = ModelSpec(arch="dcgan", shape=(3, 32, 32), z_dim=128)
    assert sorted(c.differences(d)) == sorted(
        ["arch: resnet -> dcgan", "shape: [3, 48, 48] -> [3, 32, 32]", "z_dim: 64 -> 128"]
    )


def test_model_spec_rebuilds_identical_models():
    spec = spec_for("dcgan", (1, 32, 32), "batch", "spectral")
    torch.manual_seed(3)
    G1 = build_generator(spec)
    torch.manual_seed(3)
    G2 = build_generator(ModelSpec.from_dict(spec.to_dict()))
    G2.load_state_dict(G1.state_dict())  # same architecture: keys and shapes agree
    G1.eval()
    G2.eval()
    z = torch.randn(2, 8)
    torch.testing.assert_close(G1(z), G2(z))


@pytest.mark.parametrize(
    ("arch", "shape"), [("dcgan", (3, 32, 32)), ("resnet", (3, 32, 32)), ("mlp", (2,))]
)
def test_a_width_that_leaves_a_layer_no_channel_is_refused(arch, shape):
    """model.width=0.001 used to build nets of 1-channel layers without a word (issue 24)."""
    with pytest.raises(ConfigError) as err:
        build_models(spec_for(arch, shape, width=0.001))
    line = str(err.value)
    assert line.startswith("model.width=0.001 scales a ") and "\n" not in line
    assert "rounds to none; expected model.width >= " in line
    build_models(spec_for(arch, shape, width=0.0625))  # the tests' tiny width still builds
