"""The console scripts end to end, through subprocesses, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
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
    # the run continued in its own dir: Hydra's fresh outputs/<date>/<time> is not left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}


def test_resume_into_another_run_dir_branches_and_leaves_the_source_alone(tmp_path):
    """``resume=X hydra.run.dir=Y``: Y continues X exactly as X itself would have, with X's
    history up to the checkpoint, and no byte of X changes (issue 24)."""
    src, branch, inplace = tmp_path / "src", tmp_path / "branch", tmp_path / "inplace"
    run("-m", "gansn.train", *TINY, f"hydra.run.dir={src}", cwd=tmp_path)
    shutil.copytree(src, inplace)
    before = _files(src)
    run("-m", "gansn.train", f"resume={src}", "steps=5", f"hydra.run.dir={branch}", cwd=tmp_path)
    assert _files(src) == before
    run("-m", "gansn.train", f"resume={inplace}", "steps=5", cwd=tmp_path)
    a = torch.load(branch / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(inplace / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 5
    for who in ("G", "D"):
        for k, v in a["models"][who].items():
            assert torch.equal(v, b["models"][who][k]), (who, k)
    # the source's history up to its checkpoint, then the branch's own steps
    history = (src / "metrics.jsonl").read_text()
    assert (branch / "metrics.jsonl").read_text().startswith(history)
    assert json.loads((branch / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 5
    assert list(branch.glob("events.out.tfevents.*"))

    # a branch never goes over another run's files
    proc = run(
        "-m",
        "gansn.train",
        f"resume={src}",
        "steps=7",
        f"hydra.run.dir={inplace}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: hydra.run.dir={inplace} already holds a run (checkpoints); resume="
        f"{src / 'checkpoints' / 'last.pt'} branches into a new or empty dir: choose another "
        "hydra.run.dir, or drop it to continue the checkpoint's own run"
    ]
    assert torch.load(inplace / "checkpoints" / "last.pt", weights_only=True)["step"] == 5


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


def _proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first, then ppid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    stats = {int(d.name): _proc_stat(d.name) for d in Path("/proc").glob("[0-9]*")}
    return [child for child, fields in stats.items() if fields and int(fields[1]) == pid]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan waits for an init that may never reap it)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
def test_a_killed_joblib_sweep_leaves_no_worker_training(tmp_path):
    """SIGTERM to the sweep's process (the joblib launcher, two workers): each worker saves
    its run at its step and exits; none trains on unseen or starts a queued job."""
    import signal
    import time

    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gansn.train",
            "-m",
            *TINY,
            "steps=100000",
            "ckpt_every=100000",
            "seed=0,1,2,3",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "threads=1",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not all((sweep / j / "metrics.jsonl").exists() for j in "01"):
        time.sleep(0.2)
    cmdlines = {p: Path(f"/proc/{p}/cmdline").read_text() for p in _children(proc.pid)}
    workers = [p for p, cmd in cmdlines.items() if "loky" in cmd and "resource_tracker" not in cmd]
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    deadline = time.time() + 60
    while time.time() < deadline and any(map(_running, workers)):
        time.sleep(0.2)
    alive = [p for p in workers if _running(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "the sweep's workers kept training after it was stopped"
    for j in "01":
        status = json.loads((sweep / j / "status.json").read_text())
        assert status["status"] == "interrupted" and status["step"] > 0
        assert (
            torch.load(sweep / j / "checkpoints" / "last.pt", weights_only=False)["step"]
            == status["step"]
        )
    assert not (sweep / "2").exists() and not (sweep / "3").exists()


# ---------------------------------------------------------------- protected run directories


@pytest.fixture(scope="module")
def finished_cli_run(tmp_path_factory) -> Path:
    """A run dir the CLI trained to step 3 (its last.pt at step 3), made once."""
    cwd = tmp_path_factory.mktemp("finished")
    run("-m", "gansn.train", *TINY, f"hydra.run.dir={cwd / 'run'}", cwd=cwd)
    return cwd / "run"


def _snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    code = (
        "import sys, time\n"
        "from gansn.training.lock import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


# (case, extra arguments ({run} is the run dir), how to prepare the run dir, exit code, words)
REFUSALS = [
    ("same steps again", ["steps=3"], None, 0, "nothing to do"),
    ("fewer steps", ["steps=2"], None, 2, "a run cannot be shortened"),
    ("resume with fewer steps", ["resume={run}", "steps=2"], None, 2, "cannot be shortened"),
    (
        "misspelled norm",
        ["steps=5", "norm@d_norm=spectral", "d_norm.name=spectrall"],
        None,
        2,
        "'spectrall'",
    ),
    (
        "not a checkpoint",
        ["steps=5"],
        lambda r: (r / "checkpoints" / "last.pt").write_text("hello"),
        2,
        "is not a gansn checkpoint",
    ),
    ("another process writes it", ["steps=5"], _hold_lock, 2, "is in use by pid"),
]


@pytest.mark.parametrize("case,args,prepare,code,words", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_a_finished_run_is_protected(finished_cli_run, tmp_path, case, args, prepare, code, words):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_cli_run, run_dir)
    holder = prepare(run_dir) if prepare else None
    before = _snapshot(run_dir)
    try:
        argv = [a.replace("{run}", str(run_dir)) for a in args]
        if not any(a.startswith("resume=") for a in argv):
            argv.append(f"hydra.run.dir={run_dir}")
        proc = run("-m", "gansn.train", *TINY, *argv, cwd=tmp_path, check=False)
    finally:
        if isinstance(holder, subprocess.Popen):
            holder.kill()
            holder.wait()
    assert proc.returncode == code, proc.stderr[-2000:]
    if code:
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
        assert proc.stderr.startswith("error: ") and words in proc.stderr, proc.stderr
    else:
        assert words in proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    assert _snapshot(run_dir) == before  # nothing rewritten: configs, logs, checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray outputs/


_PATCHED_TRAIN = """
import errno, os, sys
import torch
from gansn.training import trainer

failure = sys.argv.pop(1)
real_step, real_save = trainer.Trainer.train_step, torch.save

def step(self):
    out = real_step(self)
    if failure == "nan" and self.step >= 3:
        out["loss/d"] = out["loss/d"] * float("nan")
    return out

def save(obj, f, *a, **k):
    if failure == "disk full" and obj["step"] >= 4:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
    real_save(obj, f, *a, **k)

trainer.Trainer.train_step, torch.save = step, save
from gansn.cli.train import main
main()
"""


@pytest.mark.parametrize(
    "failure,code,words",
    [
        ("nan", 3, "loss/d is nan at G step 3; training stopped. The last good checkpoint"),
        ("disk full", 74, "last.pt: No space left on device; training stopped at G step 4"),
    ],
)
def test_a_failing_run_exits_with_its_code_and_one_line(tmp_path, failure, code, words):
    run_dir = tmp_path / "run"
    args = [*TINY, "steps=6", "ckpt_every=2", f"hydra.run.dir={run_dir}"]
    proc = run("-c", _PATCHED_TRAIN, failure, *args, cwd=tmp_path, check=False)
    assert proc.returncode == code, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and words in errors[0], errors
    assert "(step 2), is kept" in errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


def _can_mount_tmpfs() -> bool:
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d"
    try:
        return subprocess.run(["unshare", "-r", "-m", "sh", "-c", probe]).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -r -m to mount a tmpfs")
def test_a_really_full_disk_keeps_the_last_checkpoint(finished_cli_run, tmp_path):
    """On a tmpfs with room for one checkpoint and a half, the second save fails."""
    size_k = int((finished_cli_run / "checkpoints" / "last.pt").stat().st_size * 1.6 / 1024)
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    train = [sys.executable, "-m", "gansn.train", *TINY, "steps=6", "ckpt_every=2"]
    script = (
        f'mount -t tmpfs -o size={size_k}k tmpfs "$1" || exit 99; shift\n'
        f'"$@" hydra.run.dir={mnt}/run > {out}/stdout 2> {out}/stderr; echo $? > {out}/rc\n'
        f"cp -a {mnt}/run {out}/run\n"
    )
    subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", script, "sh", str(mnt), *train],
        check=True,
        cwd=tmp_path,
        timeout=300,
    )
    stderr = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "74", stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert torch.load(out / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 2
    assert json.loads((out / "run" / "status.json").read_text())["status"] == "failed"
    assert not list((out / "run").rglob("*.tmp")) and not (out / "run" / ".lock").exists()
