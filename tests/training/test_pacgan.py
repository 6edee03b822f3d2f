"""PacGAN's synthetic-data protocol: maxout D, MLP options, simultaneous updates, data.

The references are independent of gansn: numpy for maxout, a hand-written PyTorch loop of
PacGAN's update rule for the trainer, and the values of PacGAN's own config.py for the
presets.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gansn.config import compose, to_plain
from gansn.data import build_dataset
from gansn.errors import ConfigError
from gansn.lipschitz import LipschitzTracker
from gansn.nn.archs import ModelSpec, build_models
from gansn.nn.layers import Maxout
from gansn.nn.norms import NORMS
from gansn.training import build_trainer

PACGAN_OPTIONS = dict(
    g_hidden=400, g_depth=4, g_bias=False, d_hidden=200, d_depth=3, maxout=5, init="normal"
)


def test_maxout_matches_numpy_grouping():
    x = torch.randn(7, 12)
    want = x.numpy().reshape(7, 4, 3).max(-1)  # Blocks: (..., units, pieces), max over pieces
    np.testing.assert_array_equal(Maxout(3)(x).numpy(), want)


def test_maxout_is_one_lipschitz():
    m = Maxout(5)
    x, y = torch.randn(500, 50), torch.randn(500, 50)
    ratio = (m(x) - m(y)).norm(dim=1) / (x - y).norm(dim=1)
    assert float(ratio.max()) <= 1.0 + 1e-6


def _pacgan_spec(d_norm: str = "none", **options) -> ModelSpec:
    return ModelSpec(
        arch="mlp",
        shape=(2,),
        z_dim=2,
        g_norm={"name": "batch"},
        d_norm={"name": d_norm},
        options={**PACGAN_OPTIONS, **options},
    )


def test_pacgan_networks_have_pacgan_shapes_and_parameter_counts():
    G, D = build_models(_pacgan_spec())
    g_lin = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    d_lin = [m for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in g_lin] == [
        (2, 400, False),
        (400, 400, False),
        (400, 400, False),
        (400, 400, False),
        (400, 2, True),
    ]
    # LinearMaxout(200 units, 5 pieces) is a linear map to 1000 features
    assert [(m.in_features, m.out_features) for m in d_lin] == [
        (2, 1000),
        (200, 1000),
        (200, 1000),
        (200, 1),
    ]
    # by hand: G 2*400 + 3*400*400 + 400*2 + 2 + 4 BN * 800; D 3000 + 2*201000 + 201
    assert sum(p.numel() for p in G.parameters()) == 484_802
    assert sum(p.numel() for p in D.parameters()) == 405_201
    assert D(torch.randn(9, 2)).shape == (9,)
    assert G(torch.randn(9, 2)).shape == (9, 2)


def test_normal_init_std_and_zero_biases():
    torch.manual_seed(0)
    G, D = build_models(_pacgan_spec(init_std=0.02))
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                if m.weight.numel() >= 10_000:
                    assert abs(float(m.weight.detach().std()) - 0.02) < 0.001
                if m.bias is not None:
                    assert float(m.bias.detach().abs().max()) == 0.0


@pytest.mark.parametrize("norm", sorted(NORMS.names()))
def test_maxout_discriminator_works_with_every_norm(norm):
    torch.manual_seed(0)
    _, D = build_models(_pacgan_spec(norm, d_hidden=8, g_hidden=8))
    out = D(torch.randn(6, 2))
    out.sum().backward()
    assert out.shape == (6,) and torch.isfinite(out).all()
    assert any(isinstance(m, Maxout) for m in D.modules())
    # the Lipschitz bracket knows maxout: measured lower bound <= product upper bound
    tracker = LipschitzTracker(D, (2,), seed=0)
    values = tracker.measure(real=torch.randn(32, 2), fake=torch.randn(32, 2))
    assert values["lipschitz/bound_valid"] == 1.0
    assert values["lipschitz/lower"] <= values["lipschitz/upper_operator"] * (1 + 1e-4)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("init", "xavier", "init must be one of default, normal"),
        ("maxout", 0, "maxout must be an integer >= 1"),
        ("d_hidden", -3, "d_hidden must be an integer >= 1"),
        ("init_std", 0.0, "init_std must be > 0"),
        ("pieces", 5, "unexpected keyword"),
    ],
)
def test_bad_mlp_options_are_config_errors(option, value, message):
    with pytest.raises(ConfigError, match=message):
        build_models(_pacgan_spec(**{option: value}))


def test_unbalanced_mixture_draws_modes_at_random_and_is_reproducible():
    a = build_dataset({"name": "ring8", "n": 8000, "balanced": False, "seed": 3})
    b = build_dataset({"name": "ring8", "n": 8000, "balanced": False, "seed": 3})
    bal = build_dataset({"name": "ring8", "n": 8000, "seed": 3})
    assert torch.equal(a.data, b.data)
    counts = np.bincount(a.labels.numpy(), minlength=8)
    assert len(set(counts)) > 1  # not exactly 1000 each, as a balanced set is
    assert set(np.bincount(bal.labels.numpy(), minlength=8)) == {1000}
    # multinomial(8000, 1/8): each count within 5 standard deviations of 1000
    assert np.all(np.abs(counts - 1000) < 5 * math.sqrt(8000 / 8 * 7 / 8))


@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_presets_carry_pacgans_config(dataset):
    """The values of PacGAN's synthetic_data_experiments/*/config.py, num_packing=1."""
    cfg = to_plain(compose([f"experiment=pacgan_{dataset}", "seed=4"]))
    assert cfg["model"]["z_dim"] == 2
    assert {k: cfg["model"]["options"][k] for k in PACGAN_OPTIONS} == PACGAN_OPTIONS
    assert cfg["model"]["options"]["init_std"] == 0.02
    assert cfg["g_norm"]["name"] == "batch" and cfg["d_norm"]["name"] == "none"
    assert cfg["loss"]["name"] == "nonsaturating"
    assert cfg["update"] == "simultaneous" and cfg["n_dis"] == 1
    for who in ("g", "d"):
        assert cfg["optim"][who]["lr"] == 1e-4
        assert list(cfg["optim"][who]["betas"]) == [0.8, 0.999]
    assert cfg["optim"]["lr_decay"] == "none"
    assert cfg["batch_size"] == 100
    assert cfg["dataset"]["n"] == 100_000 and cfg["dataset"]["balanced"] is False
    assert cfg["dataset"]["seed"] == 4  # a new training set per trial
    assert cfg["steps"] == 400 * 100_000 // 100  # 400 epochs
    assert cfg["metrics"]["num_fake"] == 2500
    assert cfg["metrics"]["eval_every"] == 100_000 // 100  # every epoch
    assert "mixture_modes" in cfg["metrics"]["list"]
    assert cfg["ema"]["enabled"] is False
    data = build_dataset(dict(cfg["dataset"], n=1000))
    if dataset == "ring8":
        assert data.std == 0.01
        np.testing.assert_allclose(
            data.centers,
            [[math.cos(2 * math.pi * i / 8), math.sin(2 * math.pi * i / 8)] for i in range(8)],
            atol=1e-12,
        )
    else:
        assert data.std == 0.05
        want = sorted((i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2))
        assert sorted(map(tuple, data.centers.astype(int).tolist())) == want


def test_presets_share_one_base_and_differ_only_in_their_mixture():
    """pacgan_ring8 / pacgan_grid25 state only their dataset; the rest is pacgan/base."""
    from gansn.config import config_dir

    ring = to_plain(compose(["experiment=pacgan_ring8"]))
    grid = to_plain(compose(["experiment=pacgan_grid25"]))
    assert grid == to_plain(compose(["experiment=pacgan_ring8", "dataset=grid25"]))
    assert {k for k in ring if ring[k] != grid[k]} == {"dataset"}
    for key in ("n", "balanced", "seed"):  # the base's dataset keys reach both mixtures
        assert ring["dataset"][key] == grid["dataset"][key]
    # the base is not a runnable preset: `experiment=` lists only the files beside it
    presets = {p.stem for p in (config_dir() / "experiment").glob("*.yaml")}
    assert {"pacgan_ring8", "pacgan_grid25"} <= presets and "base" not in presets
    for name in ("pacgan_ring8", "pacgan_grid25"):
        text = (config_dir() / "experiment" / f"{name}.yaml").read_text()
        keys = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", " ", "-"))]
        assert keys == ["defaults:"], keys  # no key of its own beyond the defaults list


def _reference_simultaneous(G, D, batches, zs, lr, betas):
    """PacGAN's ``ali_algorithm`` by hand: both gradients at the same point, both step."""
    opt_g = torch.optim.Adam(G.parameters(), lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr, betas=betas)
    for x, z in zip(batches, zs):
        fake = G(z)
        d_real, d_fake = D(x), D(fake)
        d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        g_loss = F.softplus(-d_fake).mean()
        g_d = torch.autograd.grad(d_loss, list(D.parameters()), retain_graph=True)
        g_g = torch.autograd.grad(g_loss, list(G.parameters()))
        for p, g in zip(D.parameters(), g_d):
            p.grad = g
        for p, g in zip(G.parameters(), g_g):
            p.grad = g
        opt_d.step()
        opt_g.step()


def test_simultaneous_update_equals_hand_written_pacgan_step(tiny_cfg, tmp_path):
    cfg, _ = tiny_cfg(
        "experiment=pacgan_ring8",
        "steps=5",
        "batch_size=16",
        "dataset.n=160",
        "grid.n=16",
        "model.options.g_hidden=16",
        "model.options.d_hidden=8",
        "metrics=none",
        "lipschitz_every=0",
        "optim.g.fused=false",
        "optim.d.fused=false",
    )
    t = build_trainer(cfg, tmp_path / "run")
    G0 = {k: v.clone() for k, v in t.G.state_dict().items()}
    D0 = {k: v.clone() for k, v in t.D.state_dict().items()}
    # the batches and latents the trainer will draw: the stream's order and the global RNG
    from gansn.data import BatchStream

    stream = BatchStream(t.dataset, 16, seed=int(cfg["seed"]))
    rng_state = torch.get_rng_state()
    batches = [stream.next_batch()[0] for _ in range(5)]
    zs = [torch.randn(16, 2) for _ in range(5)]
    torch.set_rng_state(rng_state)
    t.train()

    G, D = build_models(t.spec)
    G.load_state_dict(G0)
    D.load_state_dict(D0)
    G.train()
    D.train()
    _reference_simultaneous(G, D, batches, zs, 1e-4, (0.8, 0.999))
    for mine, ref in ((t.G, G), (t.D, D)):
        for (k, a), b in zip(mine.state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=k)
    # and it moved: not a comparison of two untouched models
    assert not torch.equal(t.D.state_dict()["net.0.weight"], D0["net.0.weight"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["n_dis=2"], "n_dis must be 1"),
        (["g_batch_size=8"], "g_batch_size must be null or equal batch_size"),
        (["update=alternate"], "update must be one of alternating, simultaneous"),
    ],
)
def test_simultaneous_update_refuses_what_it_cannot_do(tiny_cfg, tmp_path, extra, message):
    cfg, _ = tiny_cfg("update=simultaneous", *extra)
    with pytest.raises(ConfigError, match=message):
        build_trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
