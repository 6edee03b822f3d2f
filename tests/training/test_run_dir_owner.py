"""Only the RunDir writes into a run directory.

Every file a training run creates, writes, renames, copies or removes under its run dir is
watched (Python's audit hooks see ``open``, ``os.open``, ``os.rename``/``os.replace``,
``shutil.copyfile``, ``os.mkdir``, ``os.remove``, wherever they are called from), and each
must have ``gansn/training/rundir.py`` on its call stack: it went through the RunDir.  The
one exception is TensorBoard's writer thread appending to the event file the RunDir's
writer opened.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from gansn.cli.train import run as cli_run
from gansn.config import compose

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_WATCHED: list[tuple[str, list[tuple[str, str]]]] = []  # (run dirs' parent, offenders)
_SEEN: list[str] = []
_RUNDIR = os.path.join("gansn", "training", "rundir.py")


def _audit(event: str, args: tuple) -> None:
    if not _WATCHED:
        return
    if event == "open":
        path, _, flags = args
        paths = [path] if isinstance(flags, int) and flags & _WRITE_FLAGS else []
    elif event in ("os.rename", "shutil.copyfile"):
        paths = [args[1]]
    elif event in ("os.mkdir", "os.remove", "os.rmdir"):
        paths = [args[0]]
    else:
        return
    root, offenders = _WATCHED[-1]
    for p in paths:
        if not isinstance(p, str | bytes | os.PathLike):
            continue  # a file descriptor
        p = os.path.abspath(os.fsdecode(p))
        if not p.startswith(root + os.sep):
            continue
        _SEEN.append(p)
        if _through_rundir() or _tensorboard_thread(p):
            continue
        offenders.append((event, p))


def _through_rundir() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.endswith(_RUNDIR):
            return True
        frame = frame.f_back
    return False


def _tensorboard_thread(path: str) -> bool:
    thread = threading.current_thread()
    return "events.out.tfevents." in os.path.basename(path) and type(thread).__module__.startswith(
        "tensorboard"
    )


sys.addaudithook(_audit)  # cannot be removed: it does nothing outside _watch


class _watch:
    def __init__(self, root: Path) -> None:
        self.root, self.offenders = str(root.resolve()), []

    def __enter__(self) -> list[tuple[str, str]]:
        _SEEN.clear()
        _WATCHED.append((self.root, self.offenders))
        return self.offenders

    def __exit__(self, *exc: object) -> None:
        _WATCHED.pop()


def test_the_watch_sees_a_write_that_bypasses_the_run_dir(tmp_path):
    with _watch(tmp_path) as offenders:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "stray.txt").write_text("not through RunDir")
    assert [e for e, _ in offenders] == ["os.mkdir", "open"]


TOY = [
    "experiment=toy_ring8",
    "batch_size=16",
    "dataset.n=256",
    "grid.n=16",
    "model.options.hidden=8",
    "log_every=1",
    "sample_every=2",
    "ckpt_every=2",
    "keep_every=2",
    "metrics=toy",
    "metrics.eval_every=2",
    "metrics.num_real=64",
    "metrics.num_fake=64",
    "lipschitz_every=2",
    "lipschitz.n_samples=8",
]


def test_every_write_of_a_run_goes_through_its_run_dir(tmp_path):
    """A run with every kind of output (checkpoints, best.pt, kept steps, grids, metrics,
    Lipschitz, TensorBoard, status, train.log, config files), resumed in place, then
    branched into a new dir (its history copied)."""
    a, b = tmp_path / "a", tmp_path / "b"
    with _watch(tmp_path) as offenders:
        cli_run(compose([*TOY, "steps=4"]), a, [*TOY, "steps=4"])
        cli_run(compose([*TOY, "steps=6"]), a, [*TOY, "steps=6"])  # resumes in place
        ov = [f"resume={a}", "steps=8"]
        cli_run(compose([*TOY, *ov]), b, ov, explicit_dir=True)  # branches into b
    assert offenders == []
    written = {os.path.relpath(p, tmp_path) for p in _SEEN}
    for name in (
        "a/.lock",
        "a/status.json",
        "a/train.log",
        "a/metrics.jsonl",
        "a/config.yaml",
        "a/.hydra/overrides.yaml",
        "a/checkpoints/last.pt",
        "a/checkpoints/best.pt",
        "a/checkpoints/step_000004.pt",
        "a/samples/step_000002.png",
        "a/samples/final.png",
        "b/metrics.jsonl",
        "b/checkpoints/last.pt",
    ):
        assert name in written, name
    assert any("events.out.tfevents" in w for w in written)
