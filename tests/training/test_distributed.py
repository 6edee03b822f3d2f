"""torch.distributed training on CPU (gloo): 2 ranks x B/2 equal 1 process x B.

Each test starts its ranks as separate processes with the environment torchrun gives them
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).  Run them with
``pytest -m slow tests/training/test_distributed.py`` (they are in the slow tier of
``make test``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from gansn.checkpoint import load_checkpoint
from gansn.training.rundir import read_jsonl

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("ddp_worker.py")

# DCGAN at 1/16 width on synthetic 32x32 images; G without batch norm, whose batch
# statistics over B/2 samples cannot equal those over B (SyncBatchNorm is CUDA-only).
# The tests add plain SGD (the `sgd` fixture): ranks that sum their gradients in another
# order then stay within float rounding (~1e-7 after 4 steps).
DCGAN = [
    "experiment=quick",
    "norm@g_norm=none",
    "batch_size=8",
    "dataset.n=64",
    "grid.n=4",
    "grid.nrow=2",
    "sample_every=0",
    "log_every=1",
    "lipschitz_every=2",
]


@pytest.fixture
def launch(free_port):
    """``launch(run_dir, overrides, world)``: the worker as ``world`` ranks (or one plain
    process for ``world=0``), each group on a port of its own."""
    return partial(_launch, free_port=free_port)


def _launch(run_dir: Path, overrides: list[str], world: int, free_port) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    args = [sys.executable, str(WORKER), str(run_dir), json.dumps(overrides)]
    if world == 0:
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        return
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world))
    procs = [
        subprocess.Popen(
            args,
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(world)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for r, (p, (_, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0, f"rank {r}: {err[-3000:]}"


def models(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return load_checkpoint(run_dir)["models"]


def assert_close(a: dict, b: dict, tol: float = 1e-5) -> None:
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=tol, atol=tol, msg=k)


@pytest.mark.parametrize("d_norm", ["spectral", "none"])
def test_two_ranks_train_what_one_process_trains(tmp_path, d_norm, launch, sgd):
    ov = [*DCGAN, *sgd, f"norm@d_norm={d_norm}", "steps=4", "keep_every=2"]
    launch(tmp_path / "one", ov, world=0)
    launch(tmp_path / "two", ov, world=2)
    one, two = models(tmp_path / "one"), models(tmp_path / "two")
    assert_close(one, two)
    # and the weights did move: a run that trained nothing would pass the line above
    half = load_checkpoint(tmp_path / "one" / "checkpoints" / "step_000002.pt")["models"]
    assert any(not torch.allclose(half["D"][k], one["D"][k]) for k in one["D"])
    assert any(not torch.allclose(half["G"][k], one["G"][k]) for k in one["G"])
    # logged losses are the global batch's (averaged over ranks)
    rows_one = [r for r in read_jsonl(tmp_path / "one" / "metrics.jsonl") if "loss/d" in r]
    rows_two = [r for r in read_jsonl(tmp_path / "two" / "metrics.jsonl") if "loss/d" in r]
    assert [r["step"] for r in rows_one] == [r["step"] for r in rows_two]
    for a, b in zip(rows_one, rows_two):
        assert a["loss/d"] == pytest.approx(b["loss/d"], rel=1e-5)
        assert a["loss/g"] == pytest.approx(b["loss/g"], rel=1e-5)
    # only rank 0 wrote: one events file, one status
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1


def test_resume_across_world_sizes(tmp_path, launch, sgd):
    ov = [*DCGAN, *sgd, "norm@d_norm=spectral", "ckpt_every=2"]
    launch(tmp_path / "straight", [*ov, "steps=4"], world=0)
    # 2 ranks for 2 steps, then 1 process to 4
    launch(tmp_path / "a", [*ov, "steps=2"], world=2)
    launch(tmp_path / "a", [*ov, "steps=4"], world=0)
    # 1 process for 2 steps, then 2 ranks to 4
    launch(tmp_path / "b", [*ov, "steps=2"], world=0)
    launch(tmp_path / "b", [*ov, "steps=4"], world=2)
    straight = models(tmp_path / "straight")
    assert_close(straight, models(tmp_path / "a"))
    assert_close(straight, models(tmp_path / "b"))
    assert load_checkpoint(tmp_path / "b")["step"] == 4


def test_evaluation_gathers_every_ranks_share(tmp_path, launch):
    # the toy MLP with mode metrics every 2 steps: each rank generates half of the fake
    # samples, and the metrics of the gathered set equal one process's
    ov = [
        "experiment=toy_ring8",
        "norm@g_norm=none",
        "steps=4",
        "batch_size=16",
        "dataset.n=256",
        "grid.n=16",
        "model.options.hidden=16",
        "metrics=toy",
        "metrics.eval_every=2",
        "metrics.num_fake=300",
        "metrics.batch_size=64",
        "lipschitz_every=0",
    ]
    launch(tmp_path / "one", ov, world=0)
    launch(tmp_path / "two", ov, world=2)

    def evals(d: Path) -> list[dict]:
        return [r for r in read_jsonl(d / "metrics.jsonl") if "modes/kl" in r]

    one, two = evals(tmp_path / "one"), evals(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [2, 4]
    for a, b in zip(one, two):
        tags = [k for k in a if k.startswith(("modes/", "metrics/"))]
        assert tags and tags == [k for k in b if k.startswith(("modes/", "metrics/"))]
        for k in tags:  # KL is null while no mode is captured
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-4), k
            else:
                assert a[k] == b[k], k
    # FID on the raw points is the sharp check: one rank's half of the samples, or a batch
    # taken twice, moves it far beyond rel 1e-4
    assert all(r["metrics/fid"] > 0 for r in one)
