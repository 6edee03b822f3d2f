"""The console scripts end to end, through subprocesses, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# every test starts the console scripts as subprocesses
pytestmark = pytest.mark.slow

TINY = ["experiment=quick", "steps=3", "batch_size=4", "grid.n=4", "dataset.n=16"]


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def test_train_then_sample(tmp_path):
    run_dir = tmp_path / "run"
    run("-m", "gansn.train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    for name in (
        "checkpoints/last.pt",
        "metrics.jsonl",
        "status.json",
        "config.yaml",
        ".hydra/overrides.yaml",
        "samples/final.png",
        "train.log",
    ):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*"))

    out = tmp_path / "grid.png"
    run(
        "-m",
        "gansn.cli.sample",
        f"ckpt={run_dir}",
        f"out={out}",
        "n=6",
        "nrow=3",
        "seed=1",
        f"interp={tmp_path / 'interp.png'}",
        "rows=2",
        "cols=4",
        f"npz={tmp_path / 's.npz'}",
        cwd=tmp_path,
    )
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 + 2 * 34, 2 + 3 * 34, 3)  # 2 rows x 3 cols of 32px + 2px padding
    assert np.asarray(Image.open(tmp_path / "interp.png")).shape == (2 + 2 * 34, 2 + 4 * 34, 3)
    x = np.load(tmp_path / "s.npz")["x"]
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    # the same seed gives the same samples
    run(
        "-m",
        "gansn.cli.sample",
        f"ckpt={run_dir / 'checkpoints' / 'last.pt'}",
        f"out={tmp_path / 'again.png'}",
        "n=6",
        "nrow=3",
        "seed=1",
        cwd=tmp_path,
    )
    assert np.array_equal(grid, np.asarray(Image.open(tmp_path / "again.png")))


def test_resume_override_extends_a_run(tmp_path):
    run_dir = tmp_path / "run"
    run("-m", "gansn.train", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    run("-m", "gansn.train", f"resume={run_dir}", "steps=5", cwd=tmp_path)
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 5 and ckpt["config"]["model"]["width"] == 0.0625


def test_multirun_sweeps_norms(tmp_path):
    sweep = tmp_path / "sweep"
    run(
        "-m",
        "gansn.train",
        "-m",
        *TINY,
        "steps=1",
        "norm@d_norm=spectral,layer",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    import torch

    norms = sorted(
        torch.load(sweep / str(i) / "checkpoints" / "last.pt", weights_only=True)["spec"]["d_norm"][
            "name"
        ]
        for i in (0, 1)
    )
    assert norms == ["layer", "spectral"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["optim.d.lr=-1"], "optim.d.lr must be a positive number"),
        (["n_dis=0"], "n_dis must be a positive integer"),
        (["no_such_key=1"], "no_such_key"),
        (["dataset=cifar10", "dataset.root=/nonexistent/data"], "dataset.download=true"),
        (["norm@d_norm=spectral", "d_norm.name=spectrall"], "valid names: batch, group"),
    ],
)
def test_bad_input_fails_cleanly_and_leaves_the_run_dir_alone(tmp_path, args, fragment):
    run_dir = tmp_path / "existing"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    proc = run(
        "-m", "gansn.train", *TINY, *args, f"hydra.run.dir={run_dir}", cwd=tmp_path, check=False
    )
    assert proc.returncode != 0
    assert fragment in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    proc = run(
        "-m", "gansn.train", *TINY, f"hydra.run.dir={blocker}/run", cwd=tmp_path, check=False
    )
    assert proc.returncode != 0
    assert str(blocker) in proc.stderr + proc.stdout


def test_sample_without_checkpoint_is_a_clear_error(tmp_path):
    proc = run("-m", "gansn.cli.sample", f"ckpt={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "no checkpoint at" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_stops_a_sweep_after_saving(tmp_path):
    """SIGTERM ends the whole -m sweep (not just the current job), with last.pt saved."""
    import signal
    import time

    sweep = tmp_path / "sweep"
    env = dict(os.environ)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gansn.train",
            "-m",
            *TINY,
            "steps=100000",
            "log_every=1",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while not (sweep / "0" / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert (sweep / "0" / "checkpoints" / "last.pt").is_file()
    assert not (sweep / "1").exists()  # the second job never started
