"""Study presets: their sweep grids, launchers and the SLURM config compose as documented."""

from __future__ import annotations

import itertools

import pytest
from hydra import compose, initialize_config_dir

from gansn.config import config_dir


def _hydra_cfg(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    "preset,n_jobs,axes",
    [
        (
            "norm_study_toy",
            30,
            {
                "dataset": {"ring8", "grid25"},
                "norm@d_norm": {"spectral", "batch", "layer", "weight", "none"},
                "seed": {"0", "1", "2"},
            },
        ),
        (
            "norm_study_fmnist",
            28,
            {
                "setting": {"C", "F"},
                "seed": {"0", "1"},
                "norm@d_norm": {
                    "spectral",
                    "batch",
                    "instance",
                    "layer",
                    "group",
                    "weight",
                    "none",
                },
            },
        ),
        ("norm_study_fmnist_quick", 14, {"setting": {"C", "F"}, "seed": {"0"}}),
    ],
)
def test_study_grid(preset, n_jobs, axes):
    cfg = _hydra_cfg([f"experiment={preset}"])
    params = {
        k: {v.strip() for v in str(p).split(",")} for k, p in cfg.hydra.sweeper.params.items()
    }
    for axis, values in axes.items():
        assert params[axis] == values
    assert len(list(itertools.product(*params.values()))) == n_jobs
    assert cfg.hydra.callbacks.report._target_ == "gansn.cli.callbacks.ReportOnMultirunEnd"
    assert cfg.report is True  # the study ends with its report
    # every job of the grid composes
    for combo in itertools.product(*[[f"{k}={v}" for v in sorted(vs)] for k, vs in params.items()]):
        _hydra_cfg([f"experiment={preset}", *combo])


@pytest.mark.parametrize(
    ("preset", "lengths"),
    [
        ("norm_study_fmnist", {"C": 2000, "F": 800}),
        ("norm_study_fmnist_quick", {"C": 600, "F": 200}),
    ],
)
def test_study_length_follows_the_setting(preset, lengths):
    from omegaconf.errors import InterpolationKeyError

    for setting, steps in lengths.items():
        cfg = _hydra_cfg([f"experiment={preset}", f"setting={setting}"])
        assert (cfg.steps, cfg.setting) == (steps, setting)
    assert _hydra_cfg([f"experiment={preset}", "setting=D", "steps=7"]).steps == 7
    with pytest.raises(InterpolationKeyError, match=r"steps_by_setting\.D"):
        _ = _hydra_cfg([f"experiment={preset}", "setting=D"]).steps


def test_quick_study_runs_two_jobs_at_a_time():
    cfg = _hydra_cfg(["experiment=norm_study_fmnist_quick"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert cfg.threads == 1


def test_slurm_launcher_config():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _hydra_cfg(["hydra/launcher=gansn_slurm", "hydra.launcher.partition=gpu"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.parametrize("switch", [True, False])
def test_any_sweep_ends_with_its_report_by_one_switch(monkeypatch, tmp_path, switch):
    from omegaconf import OmegaConf

    import gansn.report
    from gansn.cli.callbacks import ReportOnMultirunEnd

    calls = []
    monkeypatch.setattr(
        gansn.report, "build_report", lambda sweep, out, plots: calls.append(sweep) or sweep
    )
    cfg = OmegaConf.create({"report": switch, "hydra": {"sweep": {"dir": str(tmp_path)}}})
    ReportOnMultirunEnd().on_multirun_end(cfg)
    assert calls == ([tmp_path] if switch else [])
    # conf/train.yaml registers the callback for every sweep, off by default
    assert _hydra_cfg([]).report is False
