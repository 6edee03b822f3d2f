"""Mixed precision, channels-last, torch.compile and the distributed plumbing that needs
no second process (rank detection, batch splitting, sharded streams and samples)."""

from __future__ import annotations

import copy
import logging
import os

import pytest
import torch
from torch import nn

from gansn import distributed
from gansn.checkpoint import load_checkpoint, load_module_state, unwrapped_key
from gansn.data import BatchStream
from gansn.errors import ConfigError
from gansn.metrics.sources import GeneratorSource
from gansn.nn.norms import SpectralNorm, SpectralNormFP32
from gansn.training import build_trainer

# --- mixed precision ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_power_iteration_stays_fp32_under_autocast(dtype):
    torch.manual_seed(0)
    plain = SpectralNorm().wrap(nn.Conv2d(4, 8, 3))
    amp = copy.deepcopy(plain)
    x = torch.randn(2, 4, 6, 6)
    for _ in range(3):
        plain(x)
        with torch.autocast("cpu", dtype=dtype):
            y = amp(x)
    assert y.dtype == dtype  # the conv itself ran in low precision
    sn_plain, sn_amp = plain.parametrizations.weight[0], amp.parametrizations.weight[0]
    assert isinstance(sn_amp, SpectralNormFP32)
    # u, v and the normalized weight are bit-identical to the fp32 computation
    assert sn_amp._u.dtype == torch.float32
    assert torch.equal(sn_amp._u, sn_plain._u) and torch.equal(sn_amp._v, sn_plain._v)
    with torch.autocast("cpu", dtype=dtype):
        w_amp = amp.weight
    assert w_amp.dtype == torch.float32 and torch.equal(w_amp, plain.weight)


def test_the_fp32_class_is_torchs_computation():
    # the same seed gives the same u/v init; the same forwards give the same weights
    torch.manual_seed(1)
    ours = SpectralNorm().wrap(nn.Linear(5, 7))
    torch.manual_seed(1)
    theirs = nn.utils.parametrizations.spectral_norm(nn.Linear(5, 7))
    x = torch.randn(3, 5)
    for _ in range(4):
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_bf16_training_keeps_spectral_norm_at_one(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("amp=bf16", "norm@d_norm=spectral", "steps=6")
    trainer = build_trainer(cfg, tmp_path, overrides=ov)
    trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.D.parameters())
    layers = [m for m in trainer.D.modules() if hasattr(m, "parametrizations")]
    assert layers
    for m in layers:
        sn = m.parametrizations.weight[0]
        w = m.parametrizations.weight.original.detach().double()
        mat = w.flatten(1)
        # sigma as the layer divides by it, in fp64 from its own fp32 u and v
        sigma = sn._u.double() @ mat @ sn._v.double()
        m.eval()
        torch.testing.assert_close(m.weight.detach().double(), w / sigma, rtol=1e-5, atol=1e-7)
        # and the true largest singular value of the normalized weight is ~1 (power
        # iteration of one step per forward pass: a few percent off at worst this early)
        true = torch.linalg.matrix_norm((w / sigma).flatten(1), ord=2)
        assert abs(float(true) - 1) < 0.1


def test_fp16_scales_gradients_and_resumes_its_scale(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("amp=fp16", "steps=2")
    trainer = build_trainer(cfg, tmp_path, overrides=ov)
    trainer.train()
    state = load_checkpoint(tmp_path)
    assert set(state["scaler"]) == {"G", "D"}
    assert state["scaler"]["D"]["scale"] == trainer.scaler_d.get_scale()
    cfg2, ov2 = tiny_cfg("amp=fp16", "steps=3")
    resumed = build_trainer(cfg2, tmp_path, overrides=ov2)
    assert resumed.scaler_g.get_scale() == trainer.scaler_g.get_scale()


def test_an_unknown_amp_mode_is_refused(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg()
    cfg["amp"] = "fp8"
    with pytest.raises(ConfigError, match="amp must be one of off, bf16, fp16"):
        build_trainer(cfg, tmp_path, overrides=ov)


# --- channels-last and compile ---------------------------------------------------------------


@pytest.mark.parametrize("flush", [True, False])
def test_flush_denormal_follows_the_config(tiny_cfg, tmp_path, flush):
    # a denormal operand reads as 0 once flushing is on (x86 DAZ); the product shows which
    tiny = 1e-39  # below float32's smallest normal, 1.18e-38
    try:
        build_trainer(tiny_cfg(f"flush_denormal={str(flush).lower()}")[0], tmp_path)
        got = (torch.tensor([tiny]) * 1.0).item()
        if flush and got != 0.0 and not torch.set_flush_denormal(True):
            pytest.skip("this CPU cannot flush denormals")
        assert got == (0.0 if flush else pytest.approx(tiny, rel=1e-6))
    finally:
        torch.set_flush_denormal(False)  # torch's default, for the tests that follow


def test_ranks_that_never_join_are_one_clear_error(monkeypatch, free_port):
    # what `sbatch --ntasks=2` running gansn-train without srun looks like to its one process
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # setup() exports these: undo them after
        monkeypatch.setenv(k, "0")
        monkeypatch.delenv(k)
    env = {"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_JOB_ID": "7"}
    for k, v in {**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=r"rank 0 of 2 waited at 127\.0\.0\.1:\d+ .*srun"):
        distributed.setup("gloo", timeout_s=1)
    assert not distributed.current().distributed
    assert os.environ["WORLD_SIZE"] == "2"  # exported by setup(), removed by monkeypatch


def test_channels_last_trains_what_contiguous_trains(tiny_cfg, tmp_path, sgd):
    cfg, ov = tiny_cfg(*sgd, "norm@g_norm=none", "channels_last=true", "steps=3")
    a = build_trainer(cfg, tmp_path / "a", overrides=ov)
    conv = next(m for m in a.D.modules() if isinstance(m, nn.Conv2d))
    assert conv.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
    a.train()
    cfg_b, ov_b = tiny_cfg(*sgd, "norm@g_norm=none", "steps=3")
    b = build_trainer(cfg_b, tmp_path / "b", overrides=ov_b)
    b.train()
    for net in ("G", "D"):
        sa, sb = getattr(a, net).state_dict(), getattr(b, net).state_dict()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6, msg=k)


def test_a_failed_compile_warns_and_trains_eagerly(tiny_cfg, tmp_path, monkeypatch, caplog, sgd):
    def broken(model, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("backend exploded\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    cfg, ov = tiny_cfg(*sgd, "compile=true", "steps=2")
    with caplog.at_level(logging.WARNING, logger="gansn.training.build"):
        a = build_trainer(cfg, tmp_path / "a", overrides=ov)
        a.train()
    warned = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    assert len(warned) == 2  # once for G, once for D
    assert "backend exploded" in warned[0] and "second line" not in warned[0]
    cfg_b, ov_b = tiny_cfg(*sgd, "steps=2")
    b = build_trainer(cfg_b, tmp_path / "b", overrides=ov_b)
    b.train()
    for k, v in a.D.state_dict().items():
        assert torch.equal(v, b.D.state_dict()[k]), k


@pytest.mark.slow
def test_compiled_training_saves_plain_keys(tiny_cfg, tmp_path, caplog):
    cfg, ov = tiny_cfg(
        "experiment=toy_ring8",
        "model.options.hidden=8",
        "dataset.n=64",
        "batch_size=8",
        "grid.n=16",
        "compile=true",
        "steps=2",
        "metrics=none",
    )
    with caplog.at_level(logging.WARNING):
        trainer = build_trainer(cfg, tmp_path, overrides=ov)
        trainer.train()
    warned = [r.getMessage() for r in caplog.records if "torch.compile" in r.getMessage()]
    # G compiles and trains compiled; the SN D, called on real and fake before one
    # backward, fails in the compiled backward (SN's in-place u/v update) and runs eagerly
    assert trainer.G_step.compiled is not None
    assert len(warned) == 1 and "cannot run D" in warned[0], warned
    keys = [k for sd in load_checkpoint(tmp_path)["models"].values() for k in sd]
    assert keys and not [k for k in keys if "_orig_mod" in k or k.startswith("module.")]


# --- checkpoints from wrapped models ---------------------------------------------------------


def test_wrapped_keys_load_into_the_plain_model():
    assert unwrapped_key("module._orig_mod.net.0.weight") == "net.0.weight"
    assert unwrapped_key("net.module.weight") == "net.module.weight"
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    wrapped = {f"module._orig_mod.{k}": v for k, v in src.state_dict().items()}
    load_module_state(dst, wrapped, "models.G", "x.pt")
    assert torch.equal(dst.weight, src.weight)


# --- ranks, batches and shards ---------------------------------------------------------------


def test_ranks_come_from_torchrun_or_slurm(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert distributed.launched() == distributed.Rank(0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launched() == distributed.Rank(3, 4, 1)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[017-020,031],login2")
    rank = distributed.launched()
    assert rank == distributed.Rank(5, 8, 1) and not rank.is_main
    import os

    assert os.environ["MASTER_ADDR"] == "gpu017"
    assert os.environ["MASTER_PORT"] == str(29500 + 123456 % 1000)
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"]) == ("5", "8")


@pytest.mark.parametrize(
    ("nodes", "head"),
    [
        ("node07", "node07"),
        ("a[1-3]", "a1"),
        ("gpu[02,05]", "gpu02"),
        ("x1,x2", "x1"),
        ("", "127.0.0.1"),
    ],
)
def test_the_first_slurm_node(nodes, head):
    assert distributed._first_slurm_node(nodes) == head


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda backend="auto": distributed.Rank(0, 3, 0))
    cfg, ov = tiny_cfg("batch_size=8")
    with pytest.raises(ConfigError, match=r"batch_size=8 does not split over 3 ranks"):
        build_trainer(cfg, tmp_path, overrides=ov)
    assert not tmp_path.joinpath("checkpoints").exists()


def test_rank_shards_make_up_the_one_process_batch():
    data = torch.arange(40.0).unsqueeze(1)

    class Points(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def get_batch(self, idx):
            return data[idx], idx

    one = BatchStream(Points(), 8, seed=3)
    ranks = [BatchStream(Points(), 4, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(7):  # across an epoch boundary (5 batches per epoch)
        whole = set(one.next_batch()[1].tolist())
        shares = [set(s.next_batch()[1].tolist()) for s in ranks]
        assert shares[0] | shares[1] == whole and not shares[0] & shares[1]
    # rank 0's state continues in one process with the whole batch: the same batches
    resumed = BatchStream(Points(), 8, seed=3)
    resumed.load_state_dict(ranks[0].state_dict())
    assert torch.equal(resumed.next_batch()[1].sort().values, one.next_batch()[1].sort().values)


def test_generator_samples_shard_into_the_same_sequence():
    g = nn.Linear(2, 3)
    g.z_dim = 2
    src = GeneratorSource.from_module(g)
    whole = list(src.batches(50, 16, seed=7))
    shares = [list(src.batches(50, 16, seed=7, shard=(r, 2))) for r in range(2)]
    assert [len(s) for s in shares] == [2, 2]
    interleaved = [shares[i % 2][i // 2] for i in range(4)]
    for a, b in zip(whole, interleaved):
        assert torch.equal(a, b)
