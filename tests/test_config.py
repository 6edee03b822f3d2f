"""Hydra configs: every option of every group composes, builds, and agrees with the registries.

Options are discovered by listing ``conf/<group>/*.yaml``, so a new file is covered without
touching this test.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from gansn.config import compose, config_dir, to_plain
from gansn.losses import LOSSES, build_loss
from gansn.nn import ARCHS, NORMS, build_models, build_norm
from gansn.schema import validate_train_config
from gansn.training.build import build_optimizer, model_spec

CONF = config_dir()
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
TINY = "model.width=0.0625"
SYNTHETIC = {"fake", "ring8", "grid25"}  # datasets that need no files


def overrides_for(group: str, option: str) -> list[str]:
    if group == "norm":  # the one norm group is mounted twice, for G and for D
        return [f"norm@g_norm={option}", f"norm@d_norm={option}"]
    return [f"{group}={option}"]


def data_shape(cfg: dict[str, Any]) -> tuple[int, ...]:
    """The shape the configured dataset yields, without reading its files."""
    ds = cfg["dataset"]
    if ds["name"] in ("ring8", "grid25"):
        return (2,)
    channels = ds.get("channels") or (3 if ds.get("stacked") else None)
    if channels is None:
        channels = 1 if ds["name"] in ("mnist", "fashion_mnist") else 3
    return (channels, ds["img_size"], ds["img_size"])


def build_and_step(cfg: dict[str, Any], shape: tuple[int, ...]) -> None:
    """Build G and D from the config and run one tiny forward/backward through both."""
    G, D = build_models(model_spec(cfg, shape))
    z = torch.randn(2, G.z_dim)
    D(G(z)).mean().backward()
    for model in (G, D):
        assert all(p.grad is not None for p in model.parameters())


# ---------------------------------------------------------------- every option composes


def test_groups_are_discovered():
    assert {"dataset", "experiment", "loss", "model", "norm", "optim", "setting"} <= set(GROUPS)
    assert len(OPTIONS) >= 30


def test_defaults_compose():
    cfg = to_plain(compose())
    assert cfg["model"]["name"] == "dcgan"
    assert cfg["g_norm"]["name"] == "batch"
    assert cfg["d_norm"]["name"] == "spectral"
    assert cfg["loss"]["name"] == "hinge"
    validate_train_config(cfg)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}/{o}" for g, o in OPTIONS])
def test_every_option_composes_and_validates(group, option):
    cfg = to_plain(compose([*overrides_for(group, option), TINY]))
    validate_train_config(cfg)
    if group in ("model", "norm", "loss", "dataset"):
        node = cfg["g_norm"] if group == "norm" else cfg[group]
        assert node["name"] == option  # a file's registry name is its file name
    if group == "norm":
        assert cfg["d_norm"]["name"] == option


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
def test_model_options_build(option):
    cfg = to_plain(compose([f"model={option}", TINY]))
    build_and_step(cfg, (2,) if option == "mlp" else (3, 32, 32))


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "norm").glob("*.yaml")))
def test_norm_options_build(option):
    cfg = to_plain(compose([f"norm@g_norm={option}", f"norm@d_norm={option}", TINY]))
    for side in ("g_norm", "d_norm"):
        spec = build_norm(cfg[side]).spec()
        # every key in the YAML is an option the norm accepts, with the YAML's value
        # (nothing silently ignored or defaulted over)
        assert {k: spec[k] for k in cfg[side]} == cfg[side]
        # the spec a checkpoint stores rebuilds the same norm
        assert build_norm(spec).spec() == spec
    build_and_step(cfg, (1, 32, 32))


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "loss").glob("*.yaml")))
def test_loss_options_build(option):
    cfg = to_plain(compose([f"loss={option}"]))
    loss = build_loss(cfg["loss"])
    d_real, d_fake = torch.tensor([0.5, -0.5]), torch.tensor([0.1, 0.2])
    assert torch.isfinite(loss.d_loss(d_real, d_fake))
    assert torch.isfinite(loss.g_loss(d_fake))


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "optim").glob("*.yaml")))
def test_optim_options_build(option):
    cfg = to_plain(compose([f"optim={option}"]))
    params = [torch.nn.Parameter(torch.zeros(2))]
    for who in ("g", "d"):
        opt = build_optimizer(cfg["optim"][who], params)
        assert opt.param_groups[0]["lr"] == cfg["optim"][who]["lr"]


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "setting").glob("*.yaml")))
def test_setting_options_set_label_and_optimizer(option):
    cfg = to_plain(compose([f"setting={option}"]))
    assert cfg["setting"] == option
    params = [torch.nn.Parameter(torch.zeros(2))]
    for who in ("g", "d"):
        group = build_optimizer(cfg["optim"][who], params).param_groups[0]
        assert group["lr"] == cfg["optim"][who]["lr"]
        assert list(group["betas"]) == list(cfg["optim"][who]["betas"])


def _write_images(root: Path) -> None:
    from PIL import Image

    for i in range(2):
        Image.new("RGB", (20, 16), (40 * i, 100, 200)).save(root / f"img{i}.png")


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "dataset").glob("*.yaml")))
def test_dataset_options_build(option, tmp_path):
    data = pytest.importorskip("gansn.data")
    overrides = [f"dataset={option}"]
    cfg = to_plain(compose(overrides))
    if "n" in cfg["dataset"] and not cfg["dataset"].get("stacked"):
        overrides.append("dataset.n=16")  # keep it small (and fast)
    if option == "folder":
        _write_images(tmp_path)
        overrides.append(f"dataset.root={tmp_path}")
    cfg = to_plain(compose(overrides))
    try:
        ds = data.build_dataset(cfg["dataset"])
    except data.base.ConfigError as err:
        if option not in SYNTHETIC and "not found" in str(err):
            pytest.skip(f"{option} files are not on this machine")
        raise
    assert ds.shape == data_shape(cfg)
    x, _ = ds[0]
    assert tuple(x.shape) == ds.shape and x.dtype == torch.float32
    if len(ds.shape) == 3:
        assert x.min() >= -1.0 and x.max() <= 1.0


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_experiment_presets_build(option):
    cfg = to_plain(compose([f"experiment={option}", TINY]))
    validate_train_config(cfg)
    build_loss(cfg["loss"])
    build_and_step(cfg, data_shape(cfg))
    if cfg["dataset"]["name"] in SYNTHETIC:
        from gansn.data import build_dataset

        cfg["dataset"]["n"] = 16
        assert build_dataset(cfg["dataset"]).shape == data_shape(cfg)


def test_experiment_values_win_over_defaults_and_cli_wins_over_experiment():
    cfg = to_plain(compose(["experiment=toy_ring8"]))
    assert (cfg["model"]["name"], cfg["dataset"]["name"]) == ("mlp", "ring8")
    cfg = to_plain(compose(["experiment=toy_ring8", "norm@d_norm=weight", "steps=7"]))
    assert cfg["d_norm"]["name"] == "weight" and cfg["steps"] == 7


# ---------------------------------------------------------------- groups vs registries


def yaml_stems(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_norm_group_matches_registry():
    assert yaml_stems("norm") == NORMS.names()


def test_loss_group_matches_registry():
    assert yaml_stems("loss") == LOSSES.names()


def test_model_group_matches_registry():
    assert yaml_stems("model") == ARCHS.names()


def test_dataset_group_matches_registry():
    data = pytest.importorskip("gansn.data")
    assert yaml_stems("dataset") == data.DATASETS.names()


def test_norm_yaml_options_are_the_norms_defaults():
    # a YAML that disagreed with the class default would make `d_norm.name=x` and
    # `norm@d_norm=x` two different models
    for stem in yaml_stems("norm"):
        node = OmegaConf.to_container(OmegaConf.load(CONF / "norm" / f"{stem}.yaml"))
        assert build_norm(node).spec() == build_norm(stem).spec(), stem


# ---------------------------------------------------------------- comments on every key

_KEY = re.compile(r"^(\s*)([\w@/.+-]+):(.*)$")


def uncommented_keys(path: Path, root: Path = CONF) -> list[str]:
    """``key: value`` lines with no ``#`` comment, inline or on the line just above.

    Exempt: list items (the defaults list), mapping headers (``key:`` with nothing after
    it), whose children carry the comments, and Hydra's ``_target_``-style directives.
    """
    bad = []
    previous = ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        match = _KEY.match(line)
        if match and not stripped.startswith(("#", "- ")):
            value = match.group(3).strip()
            is_header = value == ""
            is_directive = re.fullmatch(r"_\w+_", match.group(2)) is not None
            commented = "#" in value or previous.startswith("#")
            if not (is_header or is_directive or commented):
                bad.append(f"{path.relative_to(root)}:{number}: {stripped}")
        if stripped:
            previous = stripped
    return bad


def test_every_yaml_key_carries_a_comment():
    bad = [b for path in sorted(CONF.rglob("*.yaml")) for b in uncommented_keys(path)]
    assert not bad, "YAML keys without a comment:\n" + "\n".join(bad)


def test_comment_scan_catches_a_bare_key(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text(
        "a: 1  # fine\nb:\n  c: 2\n  # why d\n  d: 3\ndefaults:\n  - x: y\n"
        "e:\n  _target_: torch.optim.Adam\n  lr: 0.1\n"
    )
    assert uncommented_keys(f, tmp_path) == ["x.yaml:3: c: 2", "x.yaml:10: lr: 0.1"]


# ---------------------------------------------------------------- overrides and sweeps


def test_d_norm_override_changes_only_d():
    cfg = to_plain(compose(["norm@d_norm=layer", TINY]))
    assert cfg["d_norm"]["name"] == "layer"
    assert cfg["g_norm"]["name"] == "batch"
    G, D = build_models(model_spec(cfg, (3, 32, 32)))
    d_norms = [m for m in D.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert d_norms and all(m.num_groups == 1 for m in d_norms)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    assert not any(hasattr(m, "parametrizations") for m in D.modules())  # spectral is gone


def test_multirun_override_expands_into_jobs_that_compose():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(
        ["norm@d_norm=spectral,batch,layer", "seed=3"]
    )
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    assert batch == [
        ["norm@d_norm=spectral", "seed=3"],
        ["norm@d_norm=batch", "seed=3"],
        ["norm@d_norm=layer", "seed=3"],
    ]
    names = [to_plain(compose(job))["d_norm"]["name"] for job in batch]
    assert names == ["spectral", "batch", "layer"]


def test_unknown_group_option_lists_available_ones():
    with pytest.raises(MissingConfigException) as info:
        compose(["norm@d_norm=spectrall"])
    for name in NORMS.names():
        assert name in str(info.value)


def test_gansn_train_cfg_job_prints_config_without_running(tmp_path):
    script = Path(sys.executable).with_name("gansn-train")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "gansn.train"]
    if not script.exists() and shutil.which("gansn-train"):
        cmd = [shutil.which("gansn-train")]
    proc = subprocess.run(
        [*cmd, "--cfg", "job"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "d_norm:" in proc.stdout
    assert re.search(r"^d_norm:\n(  .*\n)*?  name: spectral$", proc.stdout, re.M), proc.stdout
    assert "g_norm:" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no outputs/ (or anything else) in the cwd


def test_train_help_lists_every_group_option_and_documented_key(capsys, monkeypatch):
    """``gansn-train --help`` is read from conf/, so it shows what composing would accept."""
    import sys

    from gansn.cli import train as cli

    monkeypatch.setattr(sys, "argv", ["gansn-train", "--help"])
    cli.main()
    out = capsys.readouterr().out
    for group_dir in (p for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"):
        for option in group_dir.glob("*.yaml"):
            assert option.stem in out, (group_dir.name, option.stem)
    assert "norm@g_norm, norm@d_norm" in out
    cfg = to_plain(compose([]))
    for key, value in cfg.items():
        if isinstance(value, dict) and key not in ("model", "dataset", "loss", "optim", "metrics"):
            for sub in value:
                if key not in ("g_norm", "d_norm"):
                    assert f"{key}.{sub}=" in out, f"{key}.{sub}"
        elif not isinstance(value, dict):
            assert f"{key}=" in out, key
    # each documented key carries its YAML comment
    assert "n_dis=1" in out and "D updates per G update" in out


def test_slurm_sweep_without_its_plugin_is_one_line(monkeypatch):
    import importlib.util

    from gansn.cli.train import _missing_launcher

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if "submitit" in name else real(name, *a),
    )
    msg = _missing_launcher(["-m", "hydra/launcher=gansn_slurm", "seed=0,1"])
    assert msg is not None and "pip install 'gansn[slurm]'" in msg and "\n" not in msg
    assert _missing_launcher(["-m", "seed=0,1"]) is None
