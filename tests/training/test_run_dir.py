"""Run directories are protected: nothing already written is lost, rewritten or corrupted
by a second command, a killed save, a full disk or a diverging loss.

Every case starts from a copy of one finished 2-step run and asserts the error (type and
words), and that the files which were there before are untouched.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gansn.checkpoint import load_checkpoint
from gansn.config import compose, to_plain
from gansn.errors import ConfigError
from gansn.training import (
    NonFiniteLossError,
    RunDir,
    RunDirLocked,
    RunIOError,
    RunLock,
    Trainer,
    build_run,
    build_trainer,
)
from gansn.training.rundir import _RunLogHandler

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A run dir trained to step 2 (checkpoint at step 2), made once for the module."""
    run = tmp_path_factory.mktemp("finished") / "run"
    # conftest's TINY (a fixture module is not importable): the same run tiny_cfg makes
    ov = [
        "experiment=quick",
        "batch_size=4",
        "grid.n=4",
        "grid.nrow=2",
        "log_every=1",
        "sample_every=2",
        "ckpt_every=2",
        "dataset.n=32",
        "steps=2",
    ]
    build_trainer(to_plain(compose(ov)), run, overrides=ov).train()
    return run


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A fresh copy of the finished run, to damage."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file (hidden ones too) with its bytes and mtime: "untouched" means equal."""
    return {
        str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


# ---------------------------------------------------------------- re-running a finished run


def test_rerun_with_the_same_steps_does_nothing(tiny_cfg, run):
    before = snapshot(run)
    cfg, ov = tiny_cfg("steps=2")
    t = build_trainer(cfg, run, overrides=ov)
    assert t.done and t.step == 2
    t.train()
    assert snapshot(run) == before


def test_rerun_with_fewer_steps_is_refused(tiny_cfg, run):
    before = snapshot(run)
    cfg, ov = tiny_cfg("steps=1")
    with pytest.raises(ConfigError, match="at step 2, past steps=1, and a run cannot be shortened"):
        build_trainer(cfg, run, overrides=ov)
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "overrides,name",
    [
        (["norm@d_norm=spectral", "d_norm.name=spectrall"], "spectrall"),
        (["norm@g_norm=batch", "g_norm.name=bacth"], "bacth"),
        (["model.name=dcgann"], "dcgann"),
    ],
)
def test_misspelled_name_aimed_at_a_run_reports_the_name(tiny_cfg, run, overrides, name):
    before = snapshot(run)
    cfg, ov = tiny_cfg("steps=4", *overrides)
    with pytest.raises(ConfigError) as err:
        build_trainer(cfg, run, overrides=ov)
    msg = str(err.value)
    assert name in msg and "valid names" in msg and "different model" not in msg, msg
    assert snapshot(run) == before


# ------------------------------------------------------------------------------ the lock

_HOLD = """
import sys, time
from gansn.training.lock import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_and_names_the_holder(tiny_cfg, run):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(run)
        cfg, ov = tiny_cfg("steps=4")
        t = build_trainer(cfg, run, overrides=ov)
        with pytest.raises(RunDirLocked) as err:
            t.train()
        msg = str(err.value)
        assert f"in use by pid {holder.pid} on host {socket.gethostname()}" in msg, msg
        assert "\n" not in msg
        assert snapshot(run) == before  # not a byte written, the lock file included
    finally:
        holder.kill()
        holder.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over(tiny_cfg, run, caplog):
    pid = _dead_pid()
    record = {"pid": pid, "host": socket.gethostname(), "started": "2020-01-01 00:00:00"}
    (run / ".lock").write_text(json.dumps(record))
    cfg, ov = tiny_cfg("steps=3")
    with caplog.at_level(logging.WARNING):
        build_trainer(cfg, run, overrides=ov).train()
    assert f"taking over the stale lock of pid {pid}" in caplog.text
    assert load_checkpoint(run)["step"] == 3
    assert not (run / ".lock").exists()  # released at the end


def test_a_lock_from_another_host_is_not_taken_over(tiny_cfg, run):
    (run / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "x"}))
    before = snapshot(run)
    cfg, ov = tiny_cfg("steps=3")
    with pytest.raises(RunDirLocked, match=r"pid 1 on host elsewhere .* delete .*\.lock"):
        build_trainer(cfg, run, overrides=ov).train()
    assert snapshot(run) == before


def test_the_lock_is_taken_once_and_released(run):
    with RunLock(run):  # the run's RunDir takes it once; nothing takes it a second time
        held = json.loads((run / ".lock").read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(RunDirLocked, match=f"in use by pid {os.getpid()}"):
            RunLock(run).acquire()
    assert not (run / ".lock").exists()


def test_a_trainer_writes_through_the_run_dir_its_caller_opened(tiny_cfg, run):
    cfg, ov = tiny_cfg("steps=3")
    with RunDir(run) as files:  # as gansn-train: the lock held around its own writes too
        t = Trainer(build_run(cfg, run, overrides=ov), files)
        files.write_text("notes.txt", "written under the same lock\n")
        t.train()
        assert (run / ".lock").exists()  # the trainer did not release the caller's lock
    assert not (run / ".lock").exists()
    assert (run / "notes.txt").is_file() and load_checkpoint(run)["step"] == 3


# ------------------------------------------------------------------- temp files, failures


def test_temp_files_of_a_killed_save_are_removed_at_start(tiny_cfg, run, caplog):
    # what a SIGKILL during atomic_write leaves: hidden ``.<name>.<random>.tmp`` files
    leftovers = [run / "checkpoints" / ".last.pt.k1ll3d.tmp", run / ".status.json.abc.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
    (run / "notes.tmp").write_text("not ours: kept")
    cfg, ov = tiny_cfg("steps=3")
    with caplog.at_level(logging.WARNING):
        build_trainer(cfg, run, overrides=ov).train()
    assert not any(p.exists() for p in leftovers)
    assert (run / "notes.tmp").read_text() == "not ours: kept"
    assert "removed 2 temp file(s) of an interrupted save" in caplog.text


def _fail_torch_save(monkeypatch):
    def save(obj, f, *a, **k):
        # as torch's zip writer fails on a full disk: half written, the OSError its context
        try:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos")  # noqa: B904

    monkeypatch.setattr(torch, "save", save)


def _fail_metrics(monkeypatch):
    def append(self, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.metrics_path))

    monkeypatch.setattr(RunDir, "append_metrics", append)


def _fail_samples(monkeypatch):
    real = Image.Image.save

    def save(self, fp, *a, **k):
        if not isinstance(fp, str | Path):
            return real(self, fp, *a, **k)  # TensorBoard encoding a grid in memory
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    monkeypatch.setattr(Image.Image, "save", save)


def _fail_train_log(monkeypatch):
    # what logging.FileHandler.emit does when its write fails
    def emit(self, record):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.baseFilename)
        except OSError:
            self.handleError(record)

    monkeypatch.setattr(_RunLogHandler, "emit", emit)


def _fail_final_status(monkeypatch):
    real = RunDir.write_status

    def write_status(self, **fields):
        if fields["status"] != "running":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path / "status.json"))
        real(self, **fields)

    monkeypatch.setattr(RunDir, "write_status", write_status)


# (the file a full disk refuses, the step last.pt then holds, whether status.json can say so)
DISK_FULL = [
    ("checkpoints/last.pt", _fail_torch_save, 2, True),
    ("metrics.jsonl", _fail_metrics, 2, True),
    ("samples/step_000003.png", _fail_samples, 2, True),
    ("train.log", _fail_train_log, 2, True),
    ("status.json", _fail_final_status, 4, False),
]


@pytest.mark.parametrize(
    "target,fail,kept_step,status_written", DISK_FULL, ids=[c[0] for c in DISK_FULL]
)
def test_a_full_disk_ends_the_run_with_one_message(
    tiny_cfg, run, monkeypatch, caplog, target, fail, kept_step, status_written
):
    caplog.set_level(logging.INFO)  # train.log sees INFO records, as under the CLI
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    cfg, ov = tiny_cfg("steps=4", "ckpt_every=2", "sample_every=1")
    t = build_trainer(cfg, run, overrides=ov)
    fail(monkeypatch)
    with pytest.raises(RunIOError) as err:
        t.train()
    monkeypatch.undo()
    msg = str(err.value)
    assert "No space left on device" in msg and "\n" not in msg, msg
    assert f"(step {kept_step}), is kept" in msg, msg
    assert f"cannot write {run / target}" in msg, msg
    assert isinstance(err.value.__cause__, OSError)
    assert load_checkpoint(run)["step"] == kept_step
    if kept_step == 2:
        assert last.read_bytes() == before  # the last good checkpoint, byte for byte
    st = status(run)
    if status_written:
        assert st["status"] == "failed" and st["error"] == msg
    else:
        assert st["status"] == "running"  # the full disk refused this too; the error says all
    assert not list(run.rglob("*.tmp")) and not (run / ".lock").exists()


def test_status_json_follows_the_checkpoints_so_a_kill_9_leaves_the_truth(tiny_cfg, tmp_path):
    # what status.json says while the run is live is what a kill -9 would leave there
    cfg, ov = tiny_cfg("steps=6", "ckpt_every=2", "sample_every=0")
    run = tmp_path / "fresh"
    t = build_trainer(cfg, run, overrides=ov)
    seen = {}
    real_step = t.train_step

    def step():
        seen[t.step] = status(run)
        return real_step()

    t.train_step = step
    t.train()
    assert seen[0]["status"] == "running" and seen[0]["checkpoint_step"] is None
    # after the checkpoint of step 2 (saved after step 2's bookkeeping), step 3's says so
    st = seen[4]
    assert (st["status"], st["step"], st["checkpoint_step"]) == ("running", 3, 2), st
    assert seen[5]["checkpoint_step"] == 4 and "updated" in seen[5]
    final = status(run)
    assert (final["status"], final["step"], final["checkpoint_step"]) == ("completed", 6, 6)


# ----------------------------------------------------------------------------- NaN stops


@pytest.mark.parametrize(
    "ckpt_every,nan_from,note",
    [
        (2, 3, "The last good checkpoint, {last} (step 2), is kept"),
        (0, 1, "No checkpoint was saved, so there is nothing to resume from"),
    ],
)
def test_a_nan_stop_says_truthfully_whether_a_checkpoint_exists(
    tiny_cfg, tmp_path, ckpt_every, nan_from, note
):
    cfg, ov = tiny_cfg("steps=8", f"ckpt_every={ckpt_every}", "sample_every=0")
    run = tmp_path / "fresh"
    t = build_trainer(cfg, run, overrides=ov)
    real_d_loss = t.loss.d_loss
    t.loss.d_loss = lambda r, f: real_d_loss(r, f) * (float("nan") if t.step >= nan_from else 1)
    with pytest.raises(NonFiniteLossError) as err:
        t.train()
    msg = str(err.value)
    assert note.format(last=run / "checkpoints" / "last.pt") in msg and "\n" not in msg, msg
    assert status(run)["error"] == msg


def test_nan_weights_never_replace_the_last_good_checkpoint(tiny_cfg, run):
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    cfg, ov = tiny_cfg("steps=4", "ckpt_every=1")
    t = build_trainer(cfg, run, overrides=ov)
    real_step = t.train_step

    def step():
        out = real_step()
        with torch.no_grad():
            next(t.D.parameters()).fill_(float("nan"))  # a finite loss, then NaN weights
        return out

    t.train_step = step
    with pytest.raises(NonFiniteLossError, match=r"D's weights are NaN/Inf after G step 3"):
        t.train()
    assert last.read_bytes() == before
