"""A sweep's worker processes stop with the sweep.

A launcher that runs jobs in worker processes (``hydra/launcher=joblib``, the study presets'
default) leaves them running when its own process dies: a SIGTERM (a scheduler, ``kill``) or
SIGKILL to ``gansn-train -m`` ends the parent only, and its workers would train on unseen and
then start the jobs already queued to them.  So each job watches the process that launched
it: when that is gone, the running job saves a checkpoint at its step and stops, as on
SIGTERM, and the worker exits without taking another job.  A re-run of the sweep's command
with ``hydra.sweep.dir=<that dir>`` then continues every run.

Only a direct child of the sweep's process watches it.  A job that inherits the environment
without being that child (a SLURM job started through submitit) keeps running as it is.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

ENV = "GANSN_SWEEP_PID"  # the sweep's own process id, for its worker processes
POLL_S = 0.5
_orphaned = threading.Event()
_watching = False


def mark_sweep() -> None:
    """In the sweep's own process, before the launcher starts any worker."""
    os.environ[ENV] = str(os.getpid())


def _sweep_pid() -> int | None:
    """The sweep's process id when this process is not the sweep's own one."""
    try:
        pid = int(os.environ.get(ENV, ""))
    except ValueError:
        return None
    return None if pid == os.getpid() else pid


def job_started() -> None:
    """At the start of every job: a worker of this host's sweep watches the sweep."""
    global _watching
    parent = _sweep_pid()
    if parent is None or _watching:
        return
    if os.getppid() != parent:
        return  # not the sweep's child (a SLURM job inherits the environment): no watch
    _watching = True
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="gansn-sweep").start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    _orphaned.set()
    log.warning("the sweep's process %d is gone: this run saves its step and stops", parent)
    # a run in training saves and stops (its SIGTERM handler); between runs, nothing of the
    # run dir is open and the default action ends the worker
    os.kill(os.getpid(), signal.SIGTERM)


def job_finished() -> None:
    """At the end of every job: a worker whose sweep is gone exits instead of taking the
    next job queued to it (nobody would collect its result)."""
    if _orphaned.is_set():
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(128 + signal.SIGTERM)
