"""Every experiment preset composes and trains 2 steps (on synthetic data)."""

from __future__ import annotations

import pytest

from gansn.config import config_dir
from gansn.training import build_trainer

PRESETS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))

# image presets run on `fake` images of their own size; point presets keep their toy
# mixtures (synthetic already) but smaller
SHRINK = [
    "steps=2",
    "batch_size=4",
    "g_batch_size=null",
    "model.width=0.0625",
    "grid.n=4",
    "log_every=1",
    "lipschitz.n_samples=4",
]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_two_steps(tiny_cfg, tmp_path, preset):
    from gansn.config import compose, to_plain

    base = to_plain(compose([f"experiment={preset}"]))
    data = (
        ["dataset.n=64"]
        if base["dataset"]["name"] in ("ring8", "grid25")
        else [
            "dataset=fake",
            "dataset.n=16",
            f"dataset.img_size={base['dataset'].get('img_size', 32)}",
        ]
    )
    cfg = to_plain(compose([f"experiment={preset}", *data, *SHRINK]))
    if cfg["dataset"]["name"] == "fake":  # drop options only the real dataset has (split)
        fake = to_plain(compose(["dataset=fake"]))["dataset"]
        cfg["dataset"] = {k: v for k, v in cfg["dataset"].items() if k in fake}
    t = build_trainer(cfg, tmp_path)
    out = t.train()
    assert t.step == 2 and "loss/d" in out and "loss/g" in out
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "samples" / "final.png").is_file()


def test_presets_cover_the_documented_set():
    assert {
        "quick",
        "quickstart",
        "sngan_cnn_cifar10",
        "sngan_resnet_cifar10",
        "sngan_resnet_stl10",
        "toy_ring8",
        "toy_grid25",
    } <= set(PRESETS)


@pytest.mark.parametrize(
    "setting,lr,betas,n_dis",
    [
        ("A", 1e-4, [0.5, 0.9], 5),
        ("B", 1e-4, [0.5, 0.999], 1),
        ("C", 2e-4, [0.5, 0.999], 1),
        ("D", 1e-3, [0.5, 0.9], 5),
        ("E", 1e-3, [0.5, 0.999], 5),
        ("F", 1e-3, [0.9, 0.999], 5),
    ],
)
def test_sngan_settings_select_the_papers_hyperparameters(setting, lr, betas, n_dis):
    from gansn.config import compose, to_plain

    cfg = to_plain(compose(["experiment=sngan_cnn_cifar10", f"setting={setting}"]))
    assert cfg["setting"] == setting and cfg["n_dis"] == n_dis
    for who in ("g", "d"):
        assert cfg["optim"][who]["lr"] == lr and cfg["optim"][who]["betas"] == betas


def test_sngan_resnet_preset_matches_the_official_config():
    from gansn.config import compose, to_plain

    cfg = to_plain(compose(["experiment=sngan_resnet_cifar10"]))
    assert cfg["loss"]["name"] == "hinge" and cfg["model"]["name"] == "resnet"
    assert cfg["optim"]["d"]["lr"] == 2e-4 and cfg["optim"]["d"]["betas"] == [0.0, 0.9]
    assert (cfg["n_dis"], cfg["batch_size"], cfg["g_batch_size"], cfg["steps"]) == (
        5,
        64,
        128,
        50000,
    )
    assert cfg["optim"]["lr_decay"] == "linear"
