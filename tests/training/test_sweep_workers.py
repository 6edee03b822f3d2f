"""gansn.cli.sweep: which processes watch the sweep that launched them."""

from __future__ import annotations

import os
import threading

import pytest

from gansn.cli import sweep


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(sweep, "_watching", False)
    monkeypatch.setattr(sweep, "_orphaned", threading.Event())
    monkeypatch.delenv(sweep.ENV, raising=False)


def _watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gansn-sweep"]


def test_the_sweep_process_itself_and_a_plain_run_watch_nothing(monkeypatch):
    sweep.job_started()  # no sweep at all
    sweep.mark_sweep()  # the basic launcher: jobs run in the sweep's own process
    assert os.environ[sweep.ENV] == str(os.getpid())
    sweep.job_started()
    assert not sweep._watching and not _watchers()


def test_a_job_that_only_inherited_the_environment_watches_nothing(monkeypatch):
    # a SLURM job started through submitit carries the submitting process's id
    monkeypatch.setenv(sweep.ENV, str(os.getppid() + 12345))
    sweep.job_started()
    assert not sweep._watching


def test_a_worker_of_the_sweep_watches_it_once(monkeypatch):
    started = []
    monkeypatch.setattr(sweep.threading, "Thread", lambda **k: started.append(k) or _NoThread())
    monkeypatch.setenv(sweep.ENV, str(os.getppid()))  # this process is the sweep's child
    sweep.job_started()
    sweep.job_started()  # the worker's next job: still one watcher
    assert len(started) == 1 and started[0]["args"] == (os.getppid(),)


def test_a_worker_whose_sweep_lives_on_returns_from_its_job():
    sweep.job_finished()  # not orphaned: nothing happens (os._exit would end pytest)


class _NoThread:
    def start(self) -> None:
        pass
