"""The training loop: exact resume, atomic checkpoints, EMA, fixed noise, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gansn.checkpoint import load_checkpoint
from gansn.errors import ConfigError
from gansn.training import NonFiniteLossError, Trainer, build_trainer
from gansn.training.ema import EMA
from gansn.training.rundir import read_jsonl


def _stop_after(trainer: Trainer, k: int) -> None:
    """Make ``trainer`` stop after step ``k`` as if Ctrl-C arrived during that step."""
    real_step = trainer.train_step

    def step():
        out = real_step()
        if trainer.step == k:
            trainer.stopped_by = "SIGINT"
        return out

    trainer.train_step = step


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "extra",
    [
        ["norm@d_norm=spectral", "norm@g_norm=batch", "n_dis=2", "optim.lr_decay=linear"],
        ["norm@d_norm=batch", "norm@g_norm=spectral", "loss=wasserstein", "n_dis=1"],
        [
            "experiment=toy_ring8",
            "steps=4",
            "batch_size=8",
            "dataset.n=64",
            "grid.n=16",
            "model.options.hidden=8",
            "norm@d_norm=layer",
        ],
        [
            "experiment=pacgan_grid25",
            "steps=4",
            "batch_size=8",
            "dataset.n=64",
            "grid.n=16",
            "model.options.g_hidden=8",
            "model.options.d_hidden=4",
            "metrics.eval_every=2",
            "metrics.num_real=32",
            "metrics.num_fake=32",
            "lipschitz_every=2",
            "lipschitz.n_samples=8",
        ],
    ],
)
def test_resume_is_bit_exact(tiny_cfg, tmp_path, extra):
    """N steps straight == k steps, save, load into a fresh trainer, N-k steps."""
    cfg, ov = tiny_cfg(*extra, "steps=6", "ckpt_every=3")
    straight = build_trainer(cfg, tmp_path / "a", overrides=ov)
    straight.train()

    interrupted = build_trainer(cfg, tmp_path / "b", overrides=ov)
    _stop_after(interrupted, 3)
    interrupted.train()
    resumed = build_trainer(cfg, tmp_path / "c", overrides=ov, resume=tmp_path / "b")
    assert resumed.step == 3
    resumed.train()

    assert resumed.step == straight.step == 6
    _assert_same_state(straight.G.state_dict(), resumed.G.state_dict())
    _assert_same_state(straight.D.state_dict(), resumed.D.state_dict())
    assert (straight.ema is None) == (resumed.ema is None)
    if straight.ema is not None:
        _assert_same_state(straight.ema.shadow.state_dict(), resumed.ema.shadow.state_dict())
    sa, sb = straight.opt_d.state_dict()["state"], resumed.opt_d.state_dict()["state"]
    for k in sa:
        _assert_same_state(sa[k], sb[k])


def test_rerunning_into_the_same_run_dir_continues(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=2")
    build_trainer(cfg, tmp_path / "run", overrides=ov).train()
    t = build_trainer(dict(cfg, steps=4), tmp_path / "run", overrides=ov)
    assert t.step == 2
    t.train()
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss/d" in r]
    assert steps == [1, 2, 3, 4]  # each step logged once, no duplicates after resume


def test_resume_refuses_other_architecture(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=2")
    build_trainer(cfg, tmp_path / "run", overrides=ov).train()
    other, _ = tiny_cfg("norm@d_norm=batch", "model.width=0.125")
    with pytest.raises(ConfigError) as err:
        build_trainer(other, tmp_path / "elsewhere", resume=tmp_path / "run")
    msg = str(err.value)
    assert "d_norm: spectral -> batch" in msg and "width: 0.0625 -> 0.125" in msg


def test_checkpoint_contents_are_weights_only(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=2")
    build_trainer(cfg, tmp_path, overrides=ov).train()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["format"] == 1 and ckpt["step"] == 2
    assert set(ckpt["models"]) == {"G", "D", "G_ema"}
    assert ckpt["spec"]["d_norm"]["name"] == "spectral"
    assert ckpt["config"]["steps"] == 2 and ckpt["overrides"] == ov
    assert ckpt["fixed_noise"].shape == (4, cfg["model"]["z_dim"])
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed" and status["step"] == 2


def test_atomic_save_survives_a_crash_mid_write(tiny_cfg, tmp_path, monkeypatch):
    cfg, ov = tiny_cfg("steps=2")
    t = build_trainer(cfg, tmp_path, overrides=ov)
    t.train()
    last = tmp_path / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def torn_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")  # torch.save gets the temp file opened by atomic_write
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, "save", torn_save)
    t.step = 99
    with pytest.raises(KeyboardInterrupt):
        t.save()
    assert last.read_bytes() == before
    assert load_checkpoint(tmp_path)["step"] == 2
    assert [p.name for p in last.parent.iterdir()] == ["last.pt"]  # no temp files left


def test_ema_copies_buffers_and_averages_parameters():
    from gansn.nn import ModelSpec, build_generator

    G = build_generator(ModelSpec("dcgan", (1, 32, 32), 8, 0.0625, {"name": "batch"}))
    G_sn = build_generator(ModelSpec("dcgan", (1, 32, 32), 8, 0.0625, {"name": "spectral"}))
    for model in (G, G_sn):
        ema = EMA(model, decay=0.9)
        before = [p.detach().clone() for p in ema.shadow.parameters()]
        model(torch.randn(4, 8))  # train-mode forward: BN stats / SN u,v change
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        ema.update(model, step=1)
        d = min(0.9, 1 / 10)  # warm-up decay at the first update
        for b_ema, b in zip(ema.shadow.buffers(), model.buffers()):
            assert torch.equal(b_ema, b)
        for p_ema, p0, p in zip(ema.shadow.parameters(), before, model.parameters()):
            torch.testing.assert_close(p_ema, d * p0 + (1 - d) * p)
        assert any(n.endswith(("running_var", "_u")) for n, _ in model.named_buffers())


def test_fixed_noise_grid_is_reproducible_and_shared_across_norms(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=2")
    build_trainer(cfg, tmp_path / "a", overrides=ov).train()
    build_trainer(cfg, tmp_path / "b", overrides=ov).train()
    grid = lambda run: np.asarray(Image.open(tmp_path / run / "samples" / "final.png"))  # noqa: E731
    assert np.array_equal(grid("a"), grid("b"))
    other, _ = tiny_cfg("steps=2", "norm@d_norm=layer")
    t = build_trainer(other, tmp_path / "c")
    assert torch.equal(t.fixed_noise, build_trainer(cfg, tmp_path / "d").fixed_noise)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=8", "ckpt_every=2")
    t = build_trainer(cfg, tmp_path, overrides=ov)
    real_d_loss = t.loss.d_loss

    def d_loss(d_real, d_fake):
        loss = real_d_loss(d_real, d_fake)
        return loss * float("nan") if t.step >= 3 else loss

    t.loss.d_loss = d_loss
    with pytest.raises(NonFiniteLossError, match="loss/d is nan at G step 4"):
        t.train()
    assert load_checkpoint(tmp_path)["step"] == 2
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "failed" and "G step 4" in status["error"]


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("optim.d.lr=-0.1", "optim.d.lr must be a positive number"),
        ("n_dis=0", "n_dis must be a positive integer"),
        ("steps=0", "steps must be a positive integer"),
        ("optim.g.betas=[0.5,1.5]", "optim.g.betas"),
        ("ema.decay=1.5", "ema.decay"),
        ("norm@d_norm=group", None),  # valid: control case
    ],
)
def test_bad_values_fail_before_anything_is_written(tiny_cfg, tmp_path, override, fragment):
    cfg, _ = tiny_cfg(override)
    run = tmp_path / "run"
    if fragment is None:
        build_trainer(cfg, run)
        assert not run.exists()  # building alone writes nothing
        return
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
        build_trainer(cfg, run)
    assert not run.exists()


def test_unwritable_output_dir_is_a_config_error(tiny_cfg, tmp_path):
    cfg, _ = tiny_cfg()
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a dir")
    with pytest.raises(ConfigError, match="not a directory"):
        build_trainer(cfg, blocker / "run")


def test_sigterm_saves_and_marks_interrupted(tiny_cfg, tmp_path):
    import os
    import signal

    cfg, ov = tiny_cfg("steps=50", "ckpt_every=0")
    t = build_trainer(cfg, tmp_path, overrides=ov)
    real_step = t.train_step

    def step():
        out = real_step()
        if t.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    t.train_step = step
    t.train()
    assert load_checkpoint(tmp_path)["step"] == 3
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "interrupted"


def test_lipschitz_tracking_never_changes_the_trajectory(tiny_cfg, tmp_path):
    """Measuring (SN u/v, BN stats, RNG all untouched) gives the same weights as not."""
    cfg, ov = tiny_cfg("steps=4", "norm@g_norm=batch", "norm@d_norm=spectral")
    plain = build_trainer(cfg, tmp_path / "a", overrides=ov)
    plain.train()
    measured = build_trainer(
        dict(cfg, lipschitz_every=2, lipschitz={"n_samples": 4, "n_iter": 2}),
        tmp_path / "b",
        overrides=ov,
    )
    measured.train()
    _assert_same_state(plain.G.state_dict(), measured.G.state_dict())
    _assert_same_state(plain.D.state_dict(), measured.D.state_dict())
    rows = [
        r for r in read_jsonl(tmp_path / "b" / "metrics.jsonl") if "lipschitz/upper_operator" in r
    ]
    assert [r["step"] for r in rows] == [2, 4]  # every 2 steps (the end is step 4: once)
    for r in rows:
        assert r["lipschitz/lower"] <= r["lipschitz/upper_operator"]
        assert abs(r["sigma/d/conv1_3x3/matrix"] - 1) < 0.05  # spectral norm holds sigma near 1


def test_lipschitz_state_resumes_exactly(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=4", "lipschitz_every=2", "lipschitz.n_samples=4", "ckpt_every=2")
    straight = build_trainer(cfg, tmp_path / "a", overrides=ov)
    straight.train()
    first = build_trainer(cfg, tmp_path / "b", overrides=ov)
    _stop_after(first, 2)
    first.train()
    resumed = build_trainer(cfg, tmp_path / "b", overrides=ov)
    resumed.train()

    def last(run: str) -> dict:
        rows = read_jsonl(tmp_path / run / "metrics.jsonl")
        return [r for r in rows if "lipschitz/upper_operator" in r][-1]

    assert last("a") == {**last("b"), "time": last("a")["time"]}


def test_terminal_summary_says_where_things_are_and_what_was_measured(tiny_cfg, tmp_path):
    from gansn.cli.train import run_summary

    cfg, ov = tiny_cfg(
        "experiment=toy_ring8",
        "steps=4",
        "batch_size=16",
        "dataset.n=256",
        "grid.n=16",
        "model.options.hidden=8",
        "metrics=toy",
        "metrics.eval_every=4",
        "metrics.num_real=64",
        "metrics.num_fake=64",
        "lipschitz_every=4",
        "lipschitz.n_samples=8",
    )
    t = build_trainer(cfg, tmp_path / "run", overrides=ov)
    t.train()
    text = run_summary(t, tmp_path / "run")
    assert "finished 4 G steps" in text
    for part in ("samples/final.png", "checkpoints/last.pt", "train.log", "metrics.jsonl"):
        assert str(tmp_path / "run" / part) in text
    assert "(raw features)" in text and "FID " in text and "Modes " in text
    lower, upper = t.last_values["lipschitz/lower"], t.last_values["lipschitz/upper_operator"]
    assert f"measured {lower:.3g} <= Lip(D) <= {upper:.3g}" in text
    assert f"tensorboard --logdir {tmp_path / 'run'}" in text


EVAL = [
    "metrics=default",
    "metrics.eval_every=100",
    "metrics.list=[fid]",
    "metrics.features=raw",
    "metrics.num_real=16",
    "metrics.num_fake=16",
    "metrics.best=null",
    "ckpt_every=0",
]


def test_too_few_samples_for_a_metric_is_refused_before_anything_is_written(tiny_cfg, tmp_path):
    cfg, _ = tiny_cfg(*EVAL, "metrics.num_fake=1")
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as err:
        build_trainer(cfg, run)
    assert str(err.value) == (
        "metric 'fid': metrics.num_fake must be an integer >= 2, got 1 (a covariance needs at "
        "least 2 samples per side)"
    )
    assert not run.exists()


@pytest.mark.parametrize("error", [RuntimeError("a metric's bug"), ConfigError("bad input")])
def test_a_failing_final_evaluation_keeps_the_trained_run(tiny_cfg, tmp_path, error):
    cfg, ov = tiny_cfg(*EVAL)
    t = build_trainer(cfg, tmp_path, overrides=ov)
    hook = next(h for h in t.hooks if h.name == "eval")

    def fail(*a, **k):
        raise error

    hook.evaluator = fail
    with pytest.raises(type(error)) as raised:
        t.train()
    assert load_checkpoint(tmp_path)["step"] == 4  # the final evaluation ran after step 4
    if isinstance(error, ConfigError):  # the one line says so
        line = str(raised.value)
        assert line.startswith("bad input; the eval hook failed at G step 4. ")
        assert f"{tmp_path / 'checkpoints' / 'last.pt'} (step 4), is kept" in line
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "failed"
