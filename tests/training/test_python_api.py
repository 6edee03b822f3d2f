"""docs/python_api.md: what a user writes to train from Python, run as written; and a run
built by hand trains exactly as the composition root's."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from gansn.checkpoint import load_checkpoint
from gansn.config import compose, to_plain
from gansn.data import BatchStream, build_dataset
from gansn.losses import build_loss
from gansn.nn.archs import ModelSpec, build_discriminator, build_generator
from gansn.training import Run, Schedule, Trainer, build_run
from gansn.training.ema import EMA
from gansn.utils import seed_everything

DOC = Path(__file__).resolve().parents[2] / "docs" / "python_api.md"


def test_the_documented_code_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3  # from a config, by hand, holding the run dir
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)
    runs = tmp_path / "runs"
    assert load_checkpoint(runs / "quick")["step"] == 6
    by_hand = load_checkpoint(runs / "by_hand", resume=True)
    assert by_hand["step"] == 20 and by_hand["spec"]["arch"] == "mlp"
    assert (runs / "by_hand" / "samples" / "final.png").is_file()
    assert (runs / "quick2" / "notes.txt").read_text() == "why this run exists\n"
    assert load_checkpoint(runs / "quick2")["step"] == 6
    assert not any(runs.glob("*/.lock"))  # every run dir released


def test_a_run_built_by_hand_trains_as_the_config_built_one(tmp_path):
    """The trainer uses nothing but the Run it is given: the same objects, built by hand in
    the root's order, give bit-identical weights."""
    ov = ["experiment=quick", "steps=3", "sample_every=0", "ckpt_every=0", "lipschitz_every=0"]
    cfg = to_plain(compose(ov))
    root = Trainer(build_run(cfg, tmp_path / "root"), tmp_path / "root")
    root.train()

    seed_everything(0)
    data = build_dataset({"name": "fake", "n": 256, "img_size": 32, "channels": 3})
    spec = ModelSpec(
        arch="dcgan",
        shape=data.shape,
        z_dim=128,
        width=0.0625,
        g_norm={"name": "batch"},
        d_norm={"name": "spectral"},
        options={"init_std": 0.02},
    )
    G, D = build_generator(spec), build_discriminator(spec)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    run = Run(
        G=G,
        D=D,
        loss=build_loss({"name": "hinge"}),
        opt_g=torch.optim.Adam(G.parameters(), **adam),
        opt_d=torch.optim.Adam(D.parameters(), **adam),
        batches=BatchStream(data, 8, seed=0),
        spec=spec,
        schedule=Schedule(
            steps=3,
            n_dis=1,
            batch_size=8,
            update="alternating",
            log_every=5,
            sample_every=0,
            ckpt_every=0,
            keep_every=0,
        ),
        fixed_noise=torch.randn(16, 128, generator=torch.Generator().manual_seed(0)),
        grid_nrow=4,
        device=torch.device("cpu"),
        ema=EMA(G, 0.999, 0),
    )
    by_hand = Trainer(run, tmp_path / "by_hand")
    by_hand.train()

    for who in ("G", "D"):
        a, b = getattr(root, who).state_dict(), getattr(by_hand, who).state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (who, k)
    assert root.last_values["loss/d"] == by_hand.last_values["loss/d"]
    assert torch.equal(
        next(iter(root.sampler.parameters())), next(iter(by_hand.sampler.parameters()))
    )
