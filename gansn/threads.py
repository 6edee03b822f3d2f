"""How many CPU threads torch gets, and how its OpenMP workers wait: a fair share by default.

torch's default is one thread per core it sees, and libgomp's workers spin at the end of each
parallel region.  On a CPU shared with anything else (a second run of a sweep, CI, a browser)
the spinning threads steal the cores their partners wait for: quickstart steps took 7-9x
longer beside one busy process (issue 25).  So gansn

* sets ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP workers sleep instead of spinning) unless the
  environment already has one -- :func:`set_wait_policy`, called by ``gansn/__init__.py`` so
  that it runs before any gansn module imports torch: libgomp reads the variable once, when
  torch loads it (measured: set after ``import torch`` it has no effect, even before the
  first parallel op);
* gives torch the cores this process may use, shared among the runs started beside it --
  :func:`choose_threads`; ``threads=N`` in the config still decides.

torch is imported only inside :func:`apply_threads`, so importing this module loads nothing.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WAIT_POLICY = "PASSIVE"
CGROUP_ROOT = Path("/sys/fs/cgroup")

# what set_wait_policy found or did, for the run's log line
_wait_policy_note: str | None = None


def set_wait_policy(environ: MutableMapping[str, str] | None = None) -> str:
    """``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (``os.environ``) unless one is set; returns
    a note of what is in effect and who set it.

    Only takes effect in this process when torch has not been imported yet; child processes
    (a sweep's workers, torchrun's ranks) inherit it either way.
    """
    global _wait_policy_note
    env = os.environ if environ is None else environ
    if env.get("OMP_WAIT_POLICY"):
        note = f"{env['OMP_WAIT_POLICY']} (from the environment)"
    else:
        env["OMP_WAIT_POLICY"] = WAIT_POLICY
        if "torch" in sys.modules:  # libgomp has read the environment already
            note = (
                f"libgomp's default (torch was imported before gansn, whose {WAIT_POLICY} "
                "only child processes use)"
            )
        else:
            note = f"{WAIT_POLICY} (set by gansn)"
    if environ is None:
        _wait_policy_note = note
    return note


def wait_policy_note(environ: Mapping[str, str] | None = None) -> str:
    """The OpenMP wait policy in effect and who set it (what :func:`set_wait_policy` found)."""
    env = os.environ if environ is None else environ
    if environ is None and _wait_policy_note is not None:
        return _wait_policy_note
    return env.get("OMP_WAIT_POLICY") or "unset (libgomp's default: spin, then sleep)"


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count gansn chose, and why (one line each, for the run's log)."""

    threads: int  # what torch.set_num_threads gets
    reason: str  # where the number came from
    wait_policy: str  # OMP_WAIT_POLICY in effect, and who set it

    def describe(self) -> str:
        return (
            f"torch threads {self.threads} ({self.reason}); OpenMP wait policy {self.wait_policy}"
        )


def usable_cores(
    affinity: set[int] | None = None, cgroup_root: Path = CGROUP_ROOT
) -> tuple[float, str]:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota.

    A quota is a share of time, so it may be fractional (``150000 100000`` in cgroup v2's
    ``cpu.max`` is 1.5 cores); v1's ``cpu.cfs_quota_us``/``cpu.cfs_period_us`` are read when
    there is no v2 file.  Returns (cores, how they were found).
    """
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except (AttributeError, OSError):  # not Linux
            affinity = set(range(os.cpu_count() or 1))
    n = len(affinity) or 1
    quota = _cgroup_quota(cgroup_root)
    if quota is None:
        return float(n), f"{n} cores in the affinity mask, no cgroup CPU quota"
    cores = min(float(n), quota)
    return cores, f"{n} cores in the affinity mask, cgroup CPU quota {quota:g} cores"


def _cgroup_quota(root: Path) -> float | None:
    """The CPU quota in cores, or None when there is none (or it cannot be read)."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or 100000)
        for d in ("cpu", "cpu,cpuacct"):
            q, p = root / d / "cpu.cfs_quota_us", root / d / "cpu.cfs_period_us"
            if q.is_file() and p.is_file():
                quota_us, period_us = int(q.read_text()), int(p.read_text())
                return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        pass  # an unreadable or odd file is no quota we can honour
    return None


def parallel_workers(
    n_jobs: int | None = None, environ: Mapping[str, str] | None = None, cores: float = 1
) -> tuple[int, str]:
    """How many processes share these cores: a launcher's parallel jobs
    (``hydra.launcher.n_jobs``; joblib's ``-1`` is one per core) times the DDP ranks on
    this host (torchrun's ``LOCAL_WORLD_SIZE``, else ``WORLD_SIZE``).  Returns (count, why).

    ``WORLD_SIZE`` is not used under SLURM: there each task's own CPUs are already its
    affinity mask, and the ranks may span several hosts.
    """
    env = os.environ if environ is None else environ
    jobs, why = 1, []
    if n_jobs is not None and n_jobs != 1:
        # joblib's rule: -1 is every core, -2 all but one, ...; 0 is not a valid count
        jobs = n_jobs if n_jobs > 0 else max(1, math.floor(cores) + 1 + n_jobs)
        why.append(f"{jobs} parallel jobs (hydra.launcher.n_jobs={n_jobs})")
    ranks_key = "LOCAL_WORLD_SIZE" if "LOCAL_WORLD_SIZE" in env else "WORLD_SIZE"
    if ranks_key == "WORLD_SIZE" and "SLURM_PROCID" in env:
        ranks_key = ""
    ranks = _positive_int(env.get(ranks_key, "")) if ranks_key else None
    if ranks and ranks > 1:
        jobs *= ranks
        why.append(f"{ranks} ranks ({ranks_key}={ranks})")
    return jobs, " x ".join(why)


def choose_threads(
    requested: int = 0,
    *,
    n_jobs: int | None = None,
    environ: Mapping[str, str] | None = None,
    affinity: set[int] | None = None,
    cgroup_root: Path = CGROUP_ROOT,
) -> ThreadChoice:
    """torch's thread count for this process, first match wins:

    1. ``requested`` > 0 (the config's ``threads=``);
    2. ``OMP_NUM_THREADS`` in the environment (set by the user, or by a launcher: joblib's
       workers get cores // n_jobs, torchrun's ranks 1);
    3. ``max(1, floor(cores / workers))``: ``cores`` from :func:`usable_cores` (a quota of
       1.5 cores counts as 1.5), ``workers`` from :func:`parallel_workers`.  Rounded down:
       one thread more than the quota allows is throttled by the kernel in every period,
       one more than the cores is the oversubscription this avoids.
    """
    env = os.environ if environ is None else environ
    policy = wait_policy_note(environ)
    if requested > 0:
        cores, where = usable_cores(affinity, cgroup_root)
        if requested > cores:
            # honoured (a config shared between machines still runs), but said once: past
            # the cores, threads wait for each other in every parallel op
            log.warning(
                "threads=%d is more than the %g cores this process may use (%s); each step "
                "will be slower than with threads=%d",
                requested,
                cores,
                where,
                max(1, math.floor(cores)),
            )
        return ThreadChoice(requested, f"threads={requested} in the config", policy)
    omp = _positive_int(env.get("OMP_NUM_THREADS", "").split(",")[0])
    if omp:
        why = f"OMP_NUM_THREADS={omp} in the environment"
        if n_jobs is not None and n_jobs != 1:
            # the loky workers of Hydra's joblib launcher always arrive here
            why += f"; joblib sets cores // n_jobs (n_jobs={n_jobs}) unless the shell set it"
        return ThreadChoice(omp, why, policy)
    cores, where = usable_cores(affinity, cgroup_root)
    workers, shared = parallel_workers(n_jobs, env, cores)
    threads = max(1, math.floor(cores / workers))
    reason = f"{where}" + (f", shared by {shared}" if shared else "")
    return ThreadChoice(threads, reason, policy)


def apply_threads(requested: int = 0, *, n_jobs: int | None = None) -> ThreadChoice:
    """:func:`choose_threads` for this process, handed to ``torch.set_num_threads``."""
    import torch

    choice = choose_threads(requested, n_jobs=n_jobs)
    torch.set_num_threads(choice.threads)
    return choice


def _positive_int(text: str) -> int | None:
    try:
        n = int(text.strip())
    except ValueError:
        return None
    return n if n > 0 else None
