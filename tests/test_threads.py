"""The default thread count and OpenMP wait policy (gansn/threads.py), against hand-computed
cases: affinity masks and cgroup files are made up under tmp_path, the environment is a dict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gansn.threads import choose_threads, parallel_workers, set_wait_policy, usable_cores

FOUR = {0, 1, 2, 3}
TWO = {0, 1}


def cgroup_v2(root: Path, text: str) -> Path:
    (root / "cpu.max").write_text(text + "\n")
    return root


def cgroup_v1(root: Path, quota: int, period: int, d: str = "cpu") -> Path:
    (root / d).mkdir()
    (root / d / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / d / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


def choose(tmp_path: Path, affinity: set[int], env: dict[str, str] | None = None, **kw) -> int:
    kw.setdefault("cgroup_root", tmp_path)  # an empty dir: no quota
    return choose_threads(environ=env or {}, affinity=affinity, **kw).threads


def test_all_affinity_cores_when_alone(tmp_path):
    assert choose(tmp_path, FOUR) == 4
    assert choose(tmp_path, {3}) == 1


def test_cgroup_v2_quota_rounds_down(tmp_path):
    # 1.5 cores of quota on 4 affinity cores: floor(1.5) = 1
    assert choose(tmp_path, FOUR, cgroup_root=cgroup_v2(tmp_path, "150000 100000")) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max 100000", 4), ("200000 100000", 2), ("350000 100000", 3), ("800000 100000", 4)],
)
def test_cgroup_v2_quota_caps_affinity(tmp_path, text, expected):
    assert choose(tmp_path, FOUR, cgroup_root=cgroup_v2(tmp_path, text)) == expected


def test_cgroup_v1_quota(tmp_path):
    assert choose(tmp_path, FOUR, cgroup_root=cgroup_v1(tmp_path, 250000, 100000)) == 2


def test_cgroup_v1_quota_under_cpu_cpuacct(tmp_path):
    root = cgroup_v1(tmp_path, 100000, 100000, d="cpu,cpuacct")
    assert choose(tmp_path, FOUR, cgroup_root=root) == 1


def test_cgroup_v1_no_quota(tmp_path):
    assert choose(tmp_path, FOUR, cgroup_root=cgroup_v1(tmp_path, -1, 100000)) == 4


def test_unreadable_quota_is_no_quota(tmp_path):
    assert choose(tmp_path, FOUR, cgroup_root=cgroup_v2(tmp_path, "lots 100000")) == 4


def test_quota_is_reported(tmp_path):
    cores, why = usable_cores(FOUR, cgroup_v2(tmp_path, "150000 100000"))
    assert cores == 1.5
    assert "quota 1.5 cores" in why


def test_two_parallel_jobs_on_two_cores_get_one_each(tmp_path):
    assert choose(tmp_path, TWO, n_jobs=2) == 1


def test_parallel_jobs_share_a_fractional_quota(tmp_path):
    # 4.5 cores of quota over 2 jobs: floor(2.25) = 2 each
    root = cgroup_v2(tmp_path, "450000 100000")
    assert choose(tmp_path, {*range(8)}, n_jobs=2, cgroup_root=root) == 2


def test_more_jobs_than_cores_still_one_thread(tmp_path):
    assert choose(tmp_path, TWO, n_jobs=10) == 1


@pytest.mark.parametrize(("n_jobs", "workers"), [(-1, 4), (-2, 3), (-4, 1), (-9, 1), (1, 1)])
def test_joblib_negative_n_jobs(n_jobs, workers):
    assert parallel_workers(n_jobs, {}, cores=4)[0] == workers


def test_ddp_ranks_on_one_host(tmp_path):
    env = {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "RANK": "3"}
    assert choose(tmp_path, FOUR, env) == 2  # two ranks on this host
    assert choose(tmp_path, FOUR, {"WORLD_SIZE": "4", "RANK": "0"}) == 1
    # SLURM gives each task its own CPUs (the affinity mask) and may span hosts
    assert choose(tmp_path, FOUR, {"WORLD_SIZE": "4", "SLURM_PROCID": "0"}) == 4


def test_ranks_and_jobs_multiply(tmp_path):
    assert choose(tmp_path, {*range(8)}, {"LOCAL_WORLD_SIZE": "2"}, n_jobs=2) == 2


def test_threads_in_the_config_override(tmp_path):
    root = cgroup_v2(tmp_path, "150000 100000")
    choice = choose_threads(3, environ={"OMP_NUM_THREADS": "1"}, affinity=TWO, cgroup_root=root)
    assert choice.threads == 3
    assert "threads=3" in choice.reason


def test_omp_num_threads_in_the_environment_is_kept(tmp_path):
    assert choose(tmp_path, FOUR, {"OMP_NUM_THREADS": "3"}) == 3
    assert choose(tmp_path, FOUR, {"OMP_NUM_THREADS": "2,1"}) == 2  # nested: the outer level
    assert choose(tmp_path, FOUR, {"OMP_NUM_THREADS": "0"}) == 4  # not a count: ignored
    assert choose(tmp_path, FOUR, {"OMP_NUM_THREADS": ""}) == 4


def test_reason_names_the_sources(tmp_path):
    choice = choose_threads(
        n_jobs=2, environ={}, affinity=TWO, cgroup_root=cgroup_v2(tmp_path, "max 100000")
    )
    text = choice.describe()
    assert text.startswith("torch threads 1 (2 cores in the affinity mask, no cgroup CPU quota")
    assert "hydra.launcher.n_jobs=2" in text


def test_wait_policy_set_when_unset(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")  # as at a console script's start
    env: dict[str, str] = {}
    assert set_wait_policy(env) == "PASSIVE (set by gansn)"
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_wait_policy_set_after_torch_says_it_came_late():
    assert "torch" in sys.modules  # conftest imported it
    env: dict[str, str] = {}
    assert "only child processes use" in set_wait_policy(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}  # still set, for them


def test_users_wait_policy_is_kept():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert set_wait_policy(env) == "ACTIVE (from the environment)"
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_wait_policy_is_in_the_description(tmp_path):
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert (
        choose_threads(environ=env, affinity=TWO, cgroup_root=tmp_path)
        .describe()
        .endswith("OpenMP wait policy ACTIVE")
    )


# The entry points, in fresh interpreters.  libgomp prints the settings it read when torch
# loads it (OMP_DISPLAY_ENV=VERBOSE): GOMP_SPINCOUNT 0 is PASSIVE in effect, and 300000 its
# default, which is what setting the variable after `import torch` still gives.
PROBE = """
import sys
from gansn.cli.train import main
assert "torch" not in sys.modules, "the entry point loads torch before main() runs"
import torch
from gansn.threads import choose_threads
print(choose_threads().describe())
"""


def _run(args: list[str], cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    drop = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_entry_point_sets_passive_before_torch_loads():
    proc = _run(["-c", PROBE])
    assert "GOMP_SPINCOUNT = '0'" in proc.stderr
    assert proc.stdout.strip().endswith("OpenMP wait policy PASSIVE (set by gansn)")


def test_entry_point_keeps_the_users_policy():
    proc = _run(["-c", PROBE], OMP_WAIT_POLICY="ACTIVE")
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in proc.stderr
    assert proc.stdout.strip().endswith("OpenMP wait policy ACTIVE (from the environment)")


def test_too_late_after_torch_is_said_so():
    proc = _run(
        ["-c", "import torch, gansn; from gansn.threads import wait_policy_note as n; print(n())"]
    )
    assert "GOMP_SPINCOUNT = '300000'" in proc.stderr  # libgomp's default: the set came late
    assert proc.stdout.startswith("libgomp's default (torch was imported before gansn")


@pytest.mark.slow
def test_gansn_train_runs_passive_and_logs_its_choice(tmp_path):
    run_dir = tmp_path / "run"
    tiny = ["experiment=quick", "steps=2", "batch_size=4", "grid.n=4", "dataset.n=16"]
    proc = _run(["-m", "gansn.train", *tiny, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert "GOMP_SPINCOUNT = '0'" in proc.stderr
    log = (run_dir / "train.log").read_text()
    assert "cores in the affinity mask" in log
    assert "OpenMP wait policy PASSIVE (set by gansn)" in log


def test_a_sweep_passes_its_parallel_jobs():
    from types import SimpleNamespace

    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from gansn.cli.train import _parallel_jobs

    joblib = OmegaConf.create({"n_jobs": 2, "backend": None})
    assert _parallel_jobs(SimpleNamespace(mode=RunMode.MULTIRUN, launcher=joblib)) == 2
    assert _parallel_jobs(SimpleNamespace(mode=RunMode.RUN, launcher=joblib)) is None
    basic = OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher"})
    assert _parallel_jobs(SimpleNamespace(mode=RunMode.MULTIRUN, launcher=basic)) is None


def test_joblib_workers_say_where_their_count_came_from(tmp_path):
    choice = choose_threads(n_jobs=2, environ={"OMP_NUM_THREADS": "1"}, affinity=TWO)
    assert choice.threads == 1
    assert "joblib sets cores // n_jobs (n_jobs=2)" in choice.reason


def test_more_threads_than_cores_is_honoured_with_a_warning(caplog, tmp_path):
    with caplog.at_level("WARNING", logger="gansn.threads"):
        choice = choose_threads(1000, environ={}, affinity={0, 1}, cgroup_root=tmp_path)
    assert choice.threads == 1000
    assert "threads=1000 is more than the 2 cores" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="gansn.threads"):
        choose_threads(2, environ={}, affinity={0, 1}, cgroup_root=tmp_path)
    assert not caplog.text
