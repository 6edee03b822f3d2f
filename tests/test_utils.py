"""Atomic writes and the sweep of their leftovers."""

from __future__ import annotations

import os
import stat

import pytest

from gansn.utils import atomic_write, remove_temp_files


def test_atomic_write_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert os.listdir(tmp_path) == ["a.txt"]


def test_a_failed_atomic_write_names_the_target_and_leaves_the_old_file(tmp_path):
    (tmp_path / "a.txt").write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "a.txt", fail)
    assert err.value.filename == str(tmp_path / "a.txt")
    assert os.listdir(tmp_path) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_remove_temp_files_sweeps_ours_only(tmp_path):
    run = tmp_path / "run"
    ours = [run / ".status.json.ab12.tmp", run / "checkpoints" / ".last.pt.cd34.tmp"]
    kept = [
        run / "notes.tmp",  # not hidden: not an atomic_write temp
        run / "checkpoints" / "deep" / ".x.ef56.tmp",  # deeper than a run dir's folders
        tmp_path / "data" / ".linked.gh78.tmp",  # reached only through the symlink below
    ]
    for p in ours + kept:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    (run / "data").symlink_to(tmp_path / "data")
    assert sorted(remove_temp_files(run)) == sorted(ours)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in ours)
