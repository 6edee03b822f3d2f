"""How users register their own norm / arch / loss / dataset from their own module.

``tests/plugins/my_gan_plugin.py`` is an ordinary module outside gansn; importing it (which
is what the ``imports=[my_gan_plugin]`` config key does) makes its entries buildable by name.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gansn.errors import ConfigError
from gansn.losses import LOSSES, build_loss
from gansn.nn import ARCHS, NORMS, ModelSpec, build_models, build_norm
from gansn.utils import import_modules

data = pytest.importorskip("gansn.data")

PLUGIN_DIR = Path(__file__).parent / "plugins"
PLUGIN_NAMES = {
    "norm": (NORMS, ["clip", "rms"]),
    "arch": (ARCHS, ["tiny_mlp"]),
    "loss": (LOSSES, ["softhinge"]),
    "dataset": (data.DATASETS, ["line2d"]),
}


@pytest.fixture(scope="module")
def plugin():
    """Import the plugin as a user would; afterwards, leave the registries as they were."""
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import_modules(["my_gan_plugin"])
        yield sys.modules["my_gan_plugin"]
    finally:
        sys.path.remove(str(PLUGIN_DIR))
        sys.modules.pop("my_gan_plugin", None)
        for registry, names in PLUGIN_NAMES.values():
            for name in names:
                registry._entries.pop(name, None)


def test_plugin_names_are_not_there_before_import():
    # runs before the module-scoped fixture is first requested
    for registry, names in PLUGIN_NAMES.values():
        assert not set(names) & set(registry.names())


def test_importing_the_plugin_registers_everything(plugin):
    for registry, names in PLUGIN_NAMES.values():
        assert set(names) <= set(registry.names())
    # and the unknown-name message now lists them too, sorted with the built-ins
    with pytest.raises(ConfigError, match="batch, clip, group"):
        build_norm("nope")


def test_custom_norms_build_by_name(plugin):
    rms = build_norm({"name": "rms", "eps": 1e-5})
    assert isinstance(rms, plugin.RMSNorm) and rms.spec() == {"name": "rms", "eps": 1e-5}
    assert build_norm("clip").spec() == {"name": "clip", "c": 0.01}
    with pytest.raises(ConfigError, match="eps"):
        build_norm({"name": "rms", "eps": 0})
    with pytest.raises(ConfigError):
        build_norm({"name": "rms", "bogus": 1})


def test_model_with_custom_norms_contains_the_custom_modules(plugin, seeded):
    spec = ModelSpec(
        arch="dcgan",
        shape=(1, 32, 32),
        z_dim=8,
        width=0.0625,
        g_norm={"name": "rms"},
        d_norm={"name": "clip", "c": 0.05},
    )
    G, D = build_models(spec)
    rms = [m for m in G.modules() if isinstance(m, plugin.RMSNormChannels)]
    assert len(rms) == 4  # after the linear and each of the three deconvs
    clipped = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(clipped) == 8
    for layer in clipped:
        assert isinstance(layer.parametrizations.weight[0], plugin.Clip)
        assert layer.weight.abs().max() <= 0.05
    out = D(G(torch.randn(2, 8)))
    out.mean().backward()
    assert all(p.grad is not None for p in G.parameters())


def test_rms_feature_module_normalizes(plugin, seeded):
    x = torch.randn(3, 5, 4, 4) * 7
    y = plugin.RMSNormChannels(5)(x)
    # mean square over channels is 1 at every (sample, pixel)
    torch.testing.assert_close(y.pow(2).mean(1), torch.ones(3, 4, 4), atol=1e-4, rtol=0)


def test_plugin_norm_keeps_a_valid_and_correct_lipschitz_bound(plugin, seeded):
    """The plugin's RMSNorm declares its gain (``LipschitzRule.fixed_gain``) and nothing in
    gansn names it, yet D's upper bound stays valid and equals the product of the layers'
    norms from numpy's SVD; the declared gain is the dense Jacobian's norm at 0 (its sup)."""
    import copy

    import numpy as np

    from gansn.lipschitz import lipschitz_report

    spec = ModelSpec(
        arch="tiny_mlp",
        shape=(2,),
        z_dim=4,
        width=1.0,
        g_norm={"name": "none"},
        d_norm={"name": "rms", "eps": 1e-2},
        options={"hidden": 6},
    )
    _, D = build_models(spec)
    rms = next(m for m in D.modules() if isinstance(m, plugin.RMSNormChannels))
    with torch.no_grad():
        rms.gain.copy_(torch.linspace(-1.5, 0.5, 6))
    real = torch.randn(32, 2)
    rows, out = lipschitz_report(D, (2,), real=real, n_iter=300)

    def top_sv(a) -> float:
        return float(np.linalg.svd(np.asarray(a, dtype=np.float64), compute_uv=False)[0])

    # the rms module alone: its Jacobian as a dense 6x6 matrix, in float64
    ref = copy.deepcopy(rms).double()

    def jac_at(x: torch.Tensor) -> np.ndarray:
        return torch.autograd.functional.jacobian(ref, x.double()).reshape(6, 6).numpy()

    gain_ref = top_sv(jac_at(torch.zeros(1, 6)))
    assert gain_ref == pytest.approx(1.5 / 0.1, rel=1e-9)
    for _ in range(20):  # a sup: no other point has a larger Jacobian
        assert top_sv(jac_at(torch.randn(1, 6) * 3)) <= gain_ref * (1 + 1e-9)
    row = next(r for r in rows if r["path"] == "net.1")
    assert row["lip_operator"] == pytest.approx(gain_ref, rel=1e-6)

    linears = [m for m in D.modules() if isinstance(m, nn.Linear)]
    upper_ref = top_sv(linears[0].weight.detach()) * gain_ref * top_sv(linears[1].weight.detach())
    assert out["lipschitz/bound_valid"] == 1.0
    assert out["lipschitz/upper_operator"] == pytest.approx(upper_ref, rel=1e-5)
    assert out["lipschitz/lower"] <= out["lipschitz/upper_operator"]


def test_a_norm_without_a_lipschitz_rule_marks_the_bound_invalid(plugin, seeded):
    """The same module under a norm that declares nothing is unknown to the bound."""
    import math
    import warnings

    from gansn.lipschitz import LipschitzTracker
    from gansn.nn import Norm

    class Undeclared(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)

    @NORMS.register("undeclared_rms")
    class _Undeclared(Norm):
        name = "undeclared_rms"

        def feature(self, num_channels: int, spatial: bool = True) -> nn.Module:
            return Undeclared()

    try:
        _, D = build_models(
            ModelSpec(
                arch="tiny_mlp",
                shape=(2,),
                z_dim=4,
                d_norm={"name": "undeclared_rms"},
                options={"hidden": 6},
            )
        )
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            out = LipschitzTracker(D, (2,), strict=False).measure()
        assert out["lipschitz/bound_valid"] == 0.0
        assert math.isnan(out["lipschitz/upper_operator"])
    finally:
        NORMS._entries.pop("undeclared_rms", None)


def test_custom_arch_builds_by_name(plugin, seeded):
    spec = ModelSpec(
        arch="tiny_mlp",
        shape=(2,),
        z_dim=4,
        width=1.0,
        g_norm={"name": "rms"},
        d_norm={"name": "spectral"},
        options={"hidden": 6},
    )
    G, D = build_models(spec)
    assert any(isinstance(m, plugin.RMSNormChannels) for m in G.modules())
    assert [m.out_features for m in G.modules() if isinstance(m, nn.Linear)] == [6, 2]
    assert D(G(torch.randn(3, 4))).shape == (3,)
    with pytest.raises(ConfigError, match="tiny_mlp needs point data"):
        build_models(ModelSpec(arch="tiny_mlp", shape=(3, 32, 32), z_dim=4))


def test_custom_loss_builds_by_name(plugin):
    import math

    loss = build_loss("softhinge")
    d_real, d_fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    expected = (math.log1p(math.e) + math.log1p(math.exp(-1))) / 2 + (
        math.log(2) + math.log1p(math.exp(2))
    ) / 2
    assert loss.d_loss(d_real, d_fake).item() == pytest.approx(expected, rel=1e-6)
    assert loss.g_loss(d_fake).item() == pytest.approx(0.0)


def test_custom_dataset_builds_by_name_and_streams(plugin):
    ds = data.build_dataset({"name": "line2d", "n": 20, "seed": 3})
    assert (ds.name, ds.shape, ds.num_classes, ds.stacked, len(ds)) == (
        "line2d",
        (2,),
        2,
        False,
        20,
    )
    x, y = ds[0]
    assert x.shape == (2,) and x[0] == x[1] and y.dtype == torch.int64
    held_out = data.build_dataset({"name": "line2d", "n": 20, "seed": 3}, train=False)
    assert not torch.equal(held_out.data, ds.data)
    xb, yb = next(iter(data.BatchStream(ds, 4, seed=0)))
    assert xb.shape == (4, 2) and yb.shape == (4,)
    with pytest.raises(ConfigError, match="radius"):
        data.build_dataset({"name": "line2d", "radius": 2})


def test_reregistering_a_name_raises_unless_override(plugin):
    original = NORMS.get("rms")

    class OtherRMS(original):
        pass

    with pytest.raises(ConfigError, match="'rms' is already registered"):
        NORMS.register("rms")(OtherRMS)
    assert NORMS.get("rms") is original
    try:
        NORMS.register("rms", override=True)(OtherRMS)
        assert type(build_norm("rms")) is OtherRMS
    finally:
        NORMS.register("rms", original, override=True)
    # a user plugin cannot silently shadow a built-in either
    with pytest.raises(ConfigError, match="'spectral' is already registered"):
        NORMS.register("spectral")(OtherRMS)
    with pytest.raises(ConfigError, match="'hinge' is already registered"):
        LOSSES.register("hinge")(plugin.SoftHingeLoss)


def test_plugin_norm_selected_from_a_yaml_on_the_search_path(plugin):
    from gansn.config import compose, to_plain
    from gansn.training.build import model_spec

    cfg = to_plain(
        compose(
            [
                f"hydra.searchpath=[file://{PLUGIN_DIR / 'conf'}]",
                "norm@d_norm=rms",
                "model.width=0.0625",
            ]
        )
    )
    assert cfg["d_norm"] == {"name": "rms", "eps": 1e-6}
    _, D = build_models(model_spec(cfg, (1, 32, 32)))
    assert any(isinstance(m, plugin.RMSNormChannels) for m in D.modules())


def test_trainer_runs_with_every_plugin_entry(plugin, tmp_path):
    from gansn.config import compose, to_plain
    from gansn.training import build_trainer

    cfg = to_plain(
        compose(
            [
                "experiment=quick",
                "steps=2",
                "batch_size=4",
                "grid.n=4",
                "grid.nrow=2",
                "log_every=1",
                "sample_every=2",
                "ckpt_every=2",
            ]
        )
    )
    cfg.update(
        imports=["my_gan_plugin"],
        model={"name": "tiny_mlp", "z_dim": 4, "width": 1.0, "options": {"hidden": 8}},
        g_norm={"name": "rms"},
        d_norm={"name": "clip", "c": 0.1},
        loss={"name": "softhinge"},
        dataset={"name": "line2d", "n": 32},
    )
    trainer = build_trainer(cfg, tmp_path / "run")
    trainer.train()
    assert trainer.step == 2
    assert any(isinstance(m, plugin.RMSNormChannels) for m in trainer.G.modules())
