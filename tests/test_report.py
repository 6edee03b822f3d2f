"""gansn-report: aggregation math, a synthetic sweep end to end, and the CLI."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gansn.report import (
    aggregate,
    best_keys,
    build_report,
    build_study,
    collect_runs,
    read_metrics,
    sweep_axes,
)
from gansn.report.aggregate import format_stat
from gansn.report.collect import Run, sweep_commands
from gansn.report.render import Cell, Document, Table, to_html, to_markdown

# ---------------------------------------------------------------------------- aggregation


def test_aggregate_mean_and_sample_std():
    s = aggregate([1.0, 2.0, 3.0])
    assert s is not None
    assert s.mean == pytest.approx(2.0)
    assert s.std == pytest.approx(1.0)  # ddof=1: sqrt(((1)^2 + 0 + 1^2) / 2)
    assert s.n == 3


def test_aggregate_single_none_and_nonfinite():
    one = aggregate([4.0, None])
    assert one is not None and one.std is None and one.n == 1
    assert format_stat(one) == "4"
    assert aggregate([]) is None
    # a NaN is a diverged run: counted, never averaged and never dropped
    gone = aggregate([float("nan"), None])
    assert gone is not None and gone.mean is None and gone.n == 0 and gone.diverged == (None,)
    assert format_stat(gone) == "1 diverged (step ?)"
    s = aggregate([1.0, float("inf"), 3.0])
    assert s is not None and s.n == 2 and s.mean == pytest.approx(2.0)
    # 95 % t CI: 2 ± t(0.975, 1) * sqrt(2) / sqrt(2) = 2 ± 12.706
    assert (s.low, s.high) == pytest.approx((2 - 12.7062047, 2 + 12.7062047))
    assert format_stat(s) == "2 [-10.7, 14.7] · 1 diverged (step ?)"


def test_best_keys_respects_direction_and_ties():
    a, b, c = aggregate([1.0, 3.0]), aggregate([5.0]), aggregate([2.5, 2.5])
    assert best_keys({"a": a, "b": b, "c": c}, "min") == {"a"}
    assert best_keys({"a": a, "b": b, "c": c}, "max") == {"b"}
    assert best_keys({"a": a, "b": None}, "min") == set()  # nothing to compare with
    assert best_keys({"a": a, "b": b}, None) == set()


def test_best_keys_no_bold_on_a_tie_for_best():
    two, one, five = aggregate([1.0, 3.0]), aggregate([2.0, 2.0]), aggregate([5.0])
    assert best_keys({"a": two, "c": one, "b": five}, "min") == set()  # 2 == 2 for best
    # a tie below the best does not matter: the best is still strictly best
    assert best_keys({"a": two, "c": one, "b": five}, "max") == {"b"}


def test_best_keys_no_bold_on_a_column_of_equal_values():
    zeros = {k: aggregate([0.0, 0.0]) for k in ("spectral", "batch", "none")}
    assert best_keys(zeros, "max") == set()
    assert best_keys(zeros, "min") == set()


def test_best_keys_ties_at_the_precision_shown():
    # 0.30512 and 0.30508 both read "0.3051" in the table: no bold for either
    near = {"a": aggregate([0.30512]), "b": aggregate([0.30508]), "c": aggregate([0.9])}
    assert format_stat(near["a"]) == format_stat(near["b"]) == "0.3051"
    assert best_keys(near, "min") == set()
    assert best_keys(near, "max") == {"c"}


def test_read_metrics_skips_truncated_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "loss/d": 0.5}\n{"step": 2, "loss/d": 0.4}\n{"step": 3, "lo')
    recs, warnings = read_metrics(p)
    assert [r["step"] for r in recs] == [1, 2]
    assert len(warnings) == 1 and "line 3" in warnings[0]


def test_markdown_and_html_render_the_same_table():
    doc = Document("T", [Table(["a", "b"], [[Cell("x|y", bold=True), "1"]])])
    md = to_markdown(doc)
    assert "| **x\\|y** | 1 |" in md
    assert "<td><strong>x|y</strong></td>" in to_html(doc)


# ----------------------------------------------------------------------- synthetic sweep

BASE = {
    "model": {"name": "mlp"},
    "g_norm": {"name": "batch"},
    "dataset": {"name": "ring8"},
    "loss": {"name": "hinge"},
    "optim": {"g": {"lr": 2e-4, "betas": [0.5, 0.999]}, "d": {"lr": 2e-4}},
    "n_dis": 1,
    "steps": 20,
    "batch_size": 64,
    "setting": None,
}
# job: (d_norm, seed, kind). fid base: spectral 5, 7; none 20, (crashed), 30.
JOBS = [
    ("spectral", 0, "ok", 5.0),
    ("none", 0, "ok", 20.0),
    ("spectral", 1, "truncated", 7.0),
    ("none", 1, "no_status", 40.0),
    ("spectral", 2, "crashed", None),
    ("none", 2, "ok", 30.0),
]
PRECISION = {"spectral": 0.8, "none": 0.95}


def _config(norm: str, seed: int, job: int) -> dict:
    d_norm = {"name": norm, "n_power_iterations": 1} if norm == "spectral" else {"name": norm}
    return {**BASE, "d_norm": d_norm, "seed": seed, "out_dir": f"/somewhere/{job}"}


def _checkpoint(path: Path, norm: str, seed: int) -> None:
    import torch

    from gansn.nn.archs import ModelSpec, build_models

    torch.manual_seed(seed)
    spec = ModelSpec(
        arch="mlp",
        shape=(2,),
        z_dim=2,
        g_norm={"name": "none"},
        d_norm={"name": norm},
        options={"hidden": 16, "depth": 2},
    )
    G, D = build_models(spec)
    D(torch.randn(4, 2))  # one training-mode forward so SN's u/v are the real ones
    path.parent.mkdir(parents=True)
    torch.save(
        {
            "format": 1,
            "spec": spec.to_dict(),
            "models": {"G": G.state_dict(), "D": D.state_dict()},
            "fixed_noise": torch.randn(4, 2),
            "config": {},
            "step": 20,
        },
        path,
    )


def make_sweep(root: Path) -> Path:
    from PIL import Image

    sweep = root / "multirun"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        yaml.safe_dump(
            {
                "hydra": {
                    "overrides": {
                        "task": [
                            "norm@d_norm=spectral,none",
                            "seed=0,1,2",
                            "experiment=norm_study_toy",
                        ]
                    }
                }
            }
        )
    )
    for job, (norm, seed, kind, fid) in enumerate(JOBS):
        d = sweep / str(job)
        (d / ".hydra").mkdir(parents=True)
        cfg = _config(norm, seed, job)
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / ".hydra" / "overrides.yaml").write_text(
            yaml.safe_dump([f"norm@d_norm={norm}", f"seed={seed}", "experiment=norm_study_toy"])
        )
        (d / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
        if kind == "crashed":
            (d / "status.json").write_text(
                json.dumps(
                    {
                        "status": "failed",
                        "step": 0,
                        "error": "RuntimeError: boom",
                        "wall_time_s": 0.5,
                    }
                )
            )
            continue
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        lines = []
        for step in (10, 20):
            lines.append({"step": step, "time": step * 0.1, "loss/d": 1.0, "loss/g": 0.7})
            lines.append(
                {
                    "step": step,
                    "time": step * 0.1 + 0.01,
                    "metrics/fid": fid + (10.0 if step == 10 else 0.0),
                    "metrics/precision": PRECISION[norm],
                    "modes/covered": 8.0,
                    "modes/kl": 0.1 * seed,
                    "protocol": {
                        "num_real": 100,
                        "num_fake": 100,
                        "features": "raw",
                        "extractors": {"raw": {"name": "raw", "dim": 2}},
                    },
                }
            )
            lines.append(
                {
                    "step": step,
                    "time": step * 0.1 + 0.02,
                    "lipschitz/upper_operator": 1.0 if norm == "spectral" else 50.0,
                    "lipschitz/grad_real_max": 0.3,
                    "lipschitz/fd_ratio": 0.5,
                }
            )
        text = "\n".join(json.dumps(x) for x in lines) + "\n"
        if kind == "truncated":
            text += '{"step": 30, "metrics/fid": 1'  # the crash-mid-write case
        (d / "metrics.jsonl").write_text(text)
        if kind != "no_status":
            (d / "status.json").write_text(
                json.dumps({"status": "completed", "step": 20, "error": None, "wall_time_s": 2.0})
            )
        (d / "samples").mkdir()
        color = (200, 30, 30) if norm == "spectral" else (30, 30, 200)
        Image.new("RGB", (8, 8), color).save(d / "samples" / "final.png")
        _checkpoint(d / "checkpoints" / "last.pt", norm, seed)
    return sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def built(sweep, tmp_path_factory) -> tuple[Path, dict]:
    pytest.importorskip("matplotlib")
    out = build_report(sweep, tmp_path_factory.mktemp("out") / "rep", title="Test sweep")
    return out, json.loads((out / "summary.json").read_text())


def test_collect_finds_every_run_and_statuses(sweep):
    runs = collect_runs(sweep)
    assert [r.rel for r in runs] == ["0", "1", "2", "3", "4", "5"]
    by = {r.rel: r for r in runs}
    assert by["3"].status == "failed" and "status.json" in by["3"].error
    assert by["4"].status == "failed" and not by["4"].series
    assert any("truncated" in w for w in by["2"].warnings)
    assert by["2"].series["metrics/fid"][-1] == (20, 7.0)


def _study(sweep: Path):
    runs = collect_runs(sweep)
    return build_study(runs, sweep_axes(sweep, runs))


def test_study_groups_norms_into_rows(sweep):
    study = _study(sweep)
    assert study.setting_keys == []  # out_dir and d_norm options must not split settings
    (setting,) = study.settings
    assert [row.label for row in setting.rows] == ["spectral", "none"]


def test_the_report_flag_does_not_split_settings(sweep, tmp_path):
    import shutil

    # two sweeps of one study collected together, one with report=true and one without
    copy = shutil.copytree(sweep, tmp_path / "sweep")
    (copy / "multirun.yaml").unlink()
    for d in sorted(p for p in copy.iterdir() if (p / ".hydra").is_dir())[:3]:
        ov = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*ov, "report=true"]))
        if (d / "config.yaml").is_file():
            cfg = yaml.safe_load((d / "config.yaml").read_text())
            (d / "config.yaml").write_text(yaml.safe_dump({**cfg, "report": True}))
    study = _study(copy)
    assert study.setting_keys == [] and len(study.settings) == 1


def test_report_files_and_figures(built):
    out, summary = built
    for name in ("report.md", "report.html", "summary.json"):
        assert (out / name).is_file()
    figs = summary["settings"][0]["figures"]
    assert set(figs) == {
        f"fig_s1_{k}.png" for k in ("metrics_fid", "lipschitz", "spectra", "points", "samples")
    }
    for f in figs:
        assert (out / f).stat().st_size > 1000
    # every run covers 8 modes at every step: a plot of flat lines would say nothing more
    assert summary["missing_figures"] == [
        {"setting": "s1", "figure": "Modes vs step", "reason": "every run logged 8 at every step"}
    ]
    assert not (out / "fig_s1_modes_covered.png").exists()
    assert "Modes vs step (every run logged 8 at every step)" in (out / "report.md").read_text()


def test_spectra_breadth_is_the_stable_rank_fraction_of_each_checkpoint(built, sweep):
    import torch

    out, summary = built
    (setting,) = summary["settings"]
    breadth = setting["spectra_breadth"]
    assert breadth["layers"][0].startswith("layer 1") and len(breadth["layers"]) == 2
    for row in setting["rows"]:
        want = []
        for rel in row["runs"]:
            sd = torch.load(sweep / rel / "checkpoints" / "last.pt", weights_only=False)
            sd = sd["models"]["D"]
            # the raw weights, in layer order: SN only rescales, which leaves sigma_i / sigma_1
            mats = [v.numpy() for k, v in sd.items() if k.endswith(("weight", "original"))]
            fractions = []
            for w in mats[:2]:  # the last layer (one output) has a single singular value
                sv = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)
                fractions.append(float((sv**2).sum() / sv[0] ** 2 / sv.size))
            want.append(fractions)
        np.testing.assert_allclose(breadth["runs"][row["norm"]], want, rtol=1e-6)
    assert "stable rank Σσ_i²/σ_1²" in (out / "report.md").read_text()


def test_each_checkpoint_is_read_once_for_spectra_figure_and_breadth(sweep, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from gansn.report import spectra as plots

    plots._d_spectra.cache_clear()
    calls = []
    real = plots.singular_value_spectra
    monkeypatch.setattr(plots, "singular_value_spectra", lambda D: (calls.append(D), real(D))[1])
    build_report(sweep, tmp_path / "rep")
    # the breadth table reuses the spectra the figure computed: one SVD pass per checkpoint
    assert len(calls) == sum(bool(r.contributes and r.checkpoint) for r in collect_runs(sweep))
    plots._d_spectra.cache_clear()


def test_report_table_values_and_best(built):
    out, summary = built
    (setting,) = summary["settings"]
    rows = {r["norm"]: r for r in setting["rows"]}
    assert list(rows) == ["spectral", "none"]
    sp, no = rows["spectral"], rows["none"]
    assert sp["seeds"] == [0, 1] and no["seeds"] == [0, 2]
    # final = mean of the last 3 evaluations (here both: fid + 10, fid): 10 and 12
    fid = sp["metrics"]["metrics/fid:final"]
    assert fid["mean"] == pytest.approx(11.0) and fid["std"] == pytest.approx(math.sqrt(2))
    assert fid["n"] == 2
    assert sp["metrics"]["metrics/fid:last"]["mean"] == pytest.approx(6.0)  # the last value
    assert no["metrics"]["metrics/fid:best"]["mean"] == pytest.approx(25.0)
    assert setting["best"]["metrics/fid:final"] == ["spectral"]
    assert setting["best"]["metrics/precision:final"] == ["none"]  # higher is better
    assert setting["best"]["modes/covered:final"] == []  # 8 == 8: a tie, nobody is best
    assert setting["best"]["lipschitz:upper"] == []  # not ranked
    assert no["metrics"]["lipschitz:upper"]["mean"] == pytest.approx(50.0)
    assert sp["metrics"]["lipschitz:lower"]["mean"] == pytest.approx(0.5)  # max(0.3, 0.5)
    columns = [c["id"] for c in setting["columns"]]
    assert "metrics/kid:final" not in columns  # no data, no column
    md = (out / "report.md").read_text()
    assert "| spectral | 2 (+1 excl.) | 0, 1 | **11 [-1.71, 23.7]** |" in md
    cells = [c.strip() for ln in md.splitlines() if ln.startswith("| ") for c in ln.split("|")]
    assert cells.count("8 [8, 8]") == 4 and "**8 [8, 8]**" not in cells  # a tie: no bold
    assert "FID (last)" not in md  # the last value alone: summary.json only
    # the header names the feature space the numbers were measured in; modes have none
    header = next(ln for ln in md.splitlines() if ln.startswith("| Norm |"))
    assert "| FID (final), raw 2-D points |" in header
    assert "| Precision (final), raw 2-D points |" in header
    assert "| Modes (final) |" in header
    cols = {c["id"]: c for c in setting["columns"]}
    assert cols["metrics/fid:final"]["space"] == "raw 2-D points"
    assert cols["modes/covered:final"]["space"] is None
    assert "gansn-train -m norm@d_norm=spectral,none seed=0,1,2" in md
    html = (out / "report.html").read_text()
    assert "<strong>11 [-1.71, 23.7]</strong>" in html and 'src="fig_s1_spectra.png"' in html


def test_failed_runs_are_listed(built):
    out, summary = built
    failed = {r["dir"]: r for r in summary["failed"]}
    assert set(failed) == {"3", "4"}
    assert failed["4"]["error"] == "RuntimeError: boom"
    md = (out / "report.md").read_text()
    section = md.split("## Failed runs", 1)[1].split("##", 1)[0]
    assert "| 4 | failed | 0 | RuntimeError: boom |" in section
    assert "| 3 | failed |" in section
    assert summary["total_wall_time_s"] == pytest.approx(4 * 2.0 + 0.5 + 2.02)


def test_two_settings_and_joint_g_norm(tmp_path):
    sweep = tmp_path / "s"
    for i, (g, d, lr) in enumerate(
        [
            ("batch", "spectral", 1e-4),
            ("none", "batch", 1e-4),
            ("batch", "spectral", 1e-3),
            ("none", "batch", 1e-3),
        ]
    ):
        run = sweep / str(i)
        run.mkdir(parents=True)
        cfg = {
            **BASE,
            "g_norm": {"name": g},
            "d_norm": {"name": d},
            "seed": 0,
            "optim": {"g": {"lr": lr}},
        }
        overrides = [f"norm@g_norm={g}", f"norm@d_norm={d}", f"optim.g.lr={lr}", "seed=0"]
        _write_run(run, cfg, overrides, fid=i)
    study = _study(sweep)  # no multirun.yaml: the axes come from the runs' overrides
    assert [s.label for s in study.settings] == ["optim.g.lr=0.0001", "optim.g.lr=0.001"]
    assert [r.label for r in study.settings[0].rows] == ["batch / spectral", "none / batch"]


def test_missing_matplotlib_message(monkeypatch):
    from gansn.report.plots import ReportDependencyError, require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ReportDependencyError, match=r"pip install matplotlib"):
        require_matplotlib()


# ------------------------------------------------------------------------------------ CLI


def test_cli_main(sweep, tmp_path, capsys):
    from gansn.cli.report import main

    out = tmp_path / "cli"
    assert main([str(sweep), "--out", str(out), "--no-plots", "--title", "CLI", "-q"]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    assert (out / "report.md").read_text().startswith("# CLI\n")
    assert main([str(tmp_path / "nope")]) == 2


def test_cli_curves_draws_more_tags_and_refuses_one_no_run_logged(sweep, tmp_path):
    pytest.importorskip("matplotlib")
    from gansn.cli.report import main

    out = tmp_path / "curves"
    args = [str(sweep), "--out", str(out), "--no-checkpoints", "-q"]
    # a tag no run logged is a typo or a wrong sweep: refused before anything is written
    assert main([*args, "--curves", "metrics/precision,metrics/nope"]) == 2
    assert not out.exists()
    assert main([*args, "--curves", "metrics/precision"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    figs = summary["settings"][0]["figures"]
    assert "fig_s1_metrics_precision.png" in figs
    assert (out / "fig_s1_metrics_precision.png").stat().st_size > 1000
    assert main([*args, "--curves", ","]) == 2  # an empty list is a usage error


def test_cli_subprocess(sweep, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sub"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gansn.cli.report",
            str(sweep),
            "--out",
            str(out),
            "--no-checkpoints",
            "--embed-images",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert (out / "fig_s1_lipschitz.png").is_file()
    assert not (out / "fig_s1_spectra.png").exists()


def test_setting_label_hides_keys_fixed_by_the_setting_name(tmp_path):
    sweep = tmp_path / "s"
    grid = [
        ("A", 1e-4, 1, "spectral"),
        ("A", 1e-4, 1, "none"),
        ("D", 1e-3, 5, "spectral"),
        ("D", 1e-3, 5, "none"),
    ]
    for i, (setting, lr, n_dis, d) in enumerate(grid):
        run = sweep / str(i)
        run.mkdir(parents=True)
        cfg = {
            **BASE,
            "setting": setting,
            "n_dis": n_dis,
            "optim": {"g": {"lr": lr}},
            "d_norm": {"name": d},
            "seed": 0,
        }
        _write_run(run, cfg, [f"setting={setting}", f"norm@d_norm={d}", "seed=0"], fid=i)
    study = _study(sweep)
    assert [s.label for s in study.settings] == ["setting=A", "setting=D"]
    # what the setting's name stands for is described, not grouped by
    assert study.settings[1].full_label == "setting=D, n_dis=5, optim.g.lr=0.001"


def _write_run(run: Path, cfg: dict, overrides: list[str], fid: float) -> None:
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "metrics/fid": fid}) + "\n")
    (run / "status.json").write_text(json.dumps({"status": "completed", "step": 1}))


def test_axes_are_what_hydra_recorded(tmp_path):
    """A command-line value replaces a preset's sweep; config keys that differ between runs
    without being swept (an option of one norm, a path) are no axes."""
    sweep = tmp_path / "s"
    sweep.mkdir()
    hydra = {
        "sweeper": {"params": {"dataset": "ring8,grid25", "norm@d_norm": "spectral,none"}},
        "overrides": {"task": ["dataset=ring8", "seed=0,1", "steps=4"]},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    grid = [(n, seed) for n in ("spectral", "none") for seed in (0, 1)]
    for i, (norm, seed) in enumerate(grid):
        cfg = {**_config(norm, seed, i), "steps": 4}
        overrides = ["dataset=ring8", f"norm@d_norm={norm}", f"seed={seed}", "steps=4"]
        _write_run(sweep / str(i), cfg, overrides, fid=i)
    axes = sweep_axes(sweep, collect_runs(sweep))
    assert [(a.override, a.key) for a in axes] == [
        ("norm@d_norm", "d_norm.name"),
        ("seed", "seed"),
    ]


def _runs_from(specs: list[list[str]], root: Path) -> None:
    for i, overrides in enumerate(specs):
        choice = dict(o.split("=") for o in overrides)
        cfg = {**_config(choice.get("norm@d_norm", "none"), int(choice.get("seed", 0)), i)}
        _write_run(root / str(i), cfg, overrides, fid=i)


def test_sweep_command_is_rebuilt_only_when_it_makes_exactly_the_runs(tmp_path):
    """Without multirun.yaml the merged ``key=a,b`` command is the product of the values: it
    is given only when that product is the runs' set, never a command for runs that never
    existed."""
    full = tmp_path / "full"
    _runs_from(
        [[f"norm@d_norm={n}", f"seed={s}"] for n in ("spectral", "none") for s in (0, 1)], full
    )
    cmd, per_run = sweep_commands(full, collect_runs(full))
    assert cmd == "gansn-train -m norm@d_norm=spectral,none seed=0,1"
    assert len(per_run) == 4
    part = tmp_path / "part"  # 3 of the 4 combinations: no product reproduces them
    _runs_from([["norm@d_norm=spectral", "seed=0"], ["norm@d_norm=none", "seed=1"]], part)
    cmd, per_run = sweep_commands(part, collect_runs(part))
    assert cmd is None
    uneven = tmp_path / "uneven"  # a key only one run was given: no single -m line has it
    _runs_from([["norm@d_norm=spectral", "steps=5"], ["norm@d_norm=none"]], uneven)
    assert sweep_commands(uneven, collect_runs(uneven))[0] is None
    assert [c for _, c in per_run] == [
        "gansn-train norm@d_norm=spectral seed=0",
        "gansn-train norm@d_norm=none seed=1",
    ]


def test_a_folder_of_sweeps_gets_one_command_per_sweep(tmp_path):
    """The pilot's layout (C/ and F/, each its own ``-m`` sweep with other steps): one
    runnable line per sweep, not one merged line that would sweep the product."""
    root = tmp_path / "pilot"
    for name, steps in (("C", 2000), ("F", 600)):
        task = [f"setting={name}", "norm@d_norm=spectral,none", f"steps={steps}"]
        (root / name).mkdir(parents=True)
        (root / name / "multirun.yaml").write_text(
            yaml.safe_dump({"hydra": {"overrides": {"task": task}}})
        )
        _runs_from(
            [
                [f"setting={name}", f"norm@d_norm={n}", f"steps={steps}"]
                for n in ("spectral", "none")
            ],
            root / name,
        )
    cmd, _ = sweep_commands(root, collect_runs(root))
    assert cmd.splitlines() == [
        "gansn-train -m setting=C norm@d_norm=spectral,none steps=2000",
        "gansn-train -m setting=F norm@d_norm=spectral,none steps=600",
    ]
    build_report(root, tmp_path / "out", plots=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Commands (one per sweep)" in md and "steps=2000,600" not in md


# -------------------------------------------------------------------------------- figures


def test_feature_space_names_the_extractor():
    from gansn.report.aggregate import feature_space

    raw2 = {"features": "raw", "extractors": {"raw": {"name": "raw", "dim": 2}}}
    raw_img = {"features": "raw", "extractors": {"raw": {"name": "raw", "dim": 3072}}}
    assert feature_space("metrics/fid", [{"features": "classifier"}]) == "classifier features"
    assert feature_space("metrics/kid", [{"features": "inception"}]) == "Inception features"
    assert feature_space("metrics/fid", [raw2, None]) == "raw 2-D points"
    assert feature_space("metrics/precision", [raw_img]) == "raw pixels"
    # the same metric on a second extractor carries it in its tag
    assert feature_space("metrics/fid_inception", [raw_img]) == "Inception features"
    # mode counts are measured in no feature space; no protocol, no claim
    assert feature_space("modes/covered", [raw2]) is None
    assert feature_space("metrics/fid", [None]) is None
    mixed = feature_space("metrics/fid", [{"features": "classifier"}, {"features": "inception"}])
    assert mixed == "features differ: Inception features, classifier features"


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report saves, by file name (captured, not written)."""
    pytest.importorskip("matplotlib")
    from gansn.report import plots, points, spectra

    saved: dict[str, object] = {}

    def keep(fig, path, suptitle=None):
        if suptitle:
            fig.suptitle(suptitle)
        saved[Path(path).name] = fig

    monkeypatch.setattr(plots, "_save", keep)
    monkeypatch.setattr(points, "_save", keep)
    monkeypatch.setattr(spectra, "_save", keep)
    return saved


def test_curve_axis_names_the_feature_space_and_legend_is_outside(sweep, figures, tmp_path):
    from gansn.report import plots

    (setting,) = _study(sweep).settings
    caption = plots.curves_figure(setting, tmp_path / "fid.png", tag="metrics/fid")
    assert caption is not None and caption.startswith("FID (raw 2-D points) vs generator step")
    fig = figures["fid.png"]
    (ax,) = fig.axes
    assert ax.get_ylabel() == "FID (raw 2-D points)"
    assert ax.get_legend() is None and len(fig.legends) == 1  # a figure legend, not in the axes
    fig.draw_without_rendering()  # run the constrained layout, as savefig does
    legend_box = fig.legends[0].get_window_extent(fig.canvas.get_renderer())
    axes_box = ax.get_window_extent(fig.canvas.get_renderer())
    assert legend_box.x0 >= axes_box.x1  # right of the data, never over it


def test_few_evaluations_are_drawn_as_points(sweep, figures, tmp_path):
    from gansn.report import plots

    (setting,) = _study(sweep).settings  # every run evaluated twice (steps 10 and 20)
    caption = plots.curves_figure(setting, tmp_path / "fid.png", tag="metrics/fid")
    assert caption is not None and "drawn as points" in caption
    ax = figures["fid.png"].axes[0]
    data = [c.lines[0] for c in ax.containers]  # errorbar: (data line, caps, bars)
    assert len(data) == 2  # one per norm with data
    assert all(ln.get_marker() == "o" and ln.get_linewidth() < 1 for ln in data)
    assert not ax.collections or all(type(c).__name__ == "LineCollection" for c in ax.collections)


def test_uninformative_curve_is_not_drawn(sweep, figures, tmp_path):
    from gansn.report import plots

    (setting,) = _study(sweep).settings
    with pytest.raises(plots.NoInformation, match="every run logged 8 at every step"):
        plots.curves_figure(setting, tmp_path / "modes.png", tag="modes/covered")
    assert not figures


def test_spectra_omit_the_rank_one_layer(sweep, figures, tmp_path):
    import numpy as np

    from gansn.report import spectra as plots

    panels, dropped = plots.spectra_panels(
        {
            "a": [("l1", np.array([1.0, 0.5])), ("l2", np.array([1.0]))],
            "b": [("l1", np.array([1.0, 0.2])), ("l2", np.array([1.0]))],
        }
    )
    assert dropped == ["layer 2: l2"] and list(panels["a"]) == ["layer 1: l1"]

    (setting,) = _study(sweep).settings  # MLP D: 2 -> 16 -> 16 -> 1, the last is rank 1
    caption = plots.spectra_figure(setting, tmp_path / "spectra.png")
    assert "Not drawn: layer 3" in caption
    fig = figures["spectra.png"]
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1


def test_points_share_a_view_that_one_diverged_norm_cannot_move():
    import numpy as np

    from gansn.report.points import points_view, to_frame

    rng = np.random.default_rng(0)
    real = rng.normal(size=(500, 2))
    good = rng.normal(size=(500, 2))
    far = good + np.array([1e4, -1e4])
    lo, hi = points_view([good], real)
    lo2, hi2 = points_view([good, far], real)
    assert np.allclose(lo, lo2) and np.allclose(hi, hi2)
    assert np.all(hi - lo < 20)  # the real data's extent plus a margin
    # without real data: per-norm quantiles, median over norms
    lo3, hi3 = points_view([good, good + 0.1, far], None)
    assert np.all(hi3 - lo3 < 20)
    # points outside land on the frame, in their own direction from the center
    mid = (lo + hi) / 2
    edge = to_frame(mid + np.array([[100.0, 0.0], [50.0, 50.0], [0.0, -1e6]]), lo, hi)
    assert np.allclose(edge[0], [hi[0], mid[1]]) and np.allclose(edge[2], [mid[0], lo[1]])
    assert np.all((edge >= lo - 1e-9) & (edge <= hi + 1e-9))


def test_points_figure_counts_points_outside_and_has_no_empty_panel(
    sweep, figures, tmp_path, monkeypatch
):
    from gansn.report import points as plots

    real_sample = plots.sample
    calls: list[int] = []

    def diverging(G, n, seed=0):
        calls.append(1)
        x = real_sample(G, n, seed=seed)
        return x + 1e3 if len(calls) == 2 else x.clamp(-0.5, 0.5)  # the 2nd norm flies off

    monkeypatch.setattr(plots, "sample", diverging)
    (setting,) = _study(sweep).settings
    assert plots.points_figure(setting, tmp_path / "points.png", n=100) is not None
    fig = figures["points.png"]
    assert len(fig.axes) == 2  # two norms with 2-D checkpoints, no filler axes
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "spectral"
    assert titles[1].startswith("none\n100 of 100 outside")
    # the diverged norm did not stretch the shared view, which the real ring8 data sets
    assert fig.axes[0].get_xlim() == fig.axes[1].get_xlim()
    assert fig.axes[1].get_xlim()[1] < 10


def test_sample_grids_are_enlarged_to_readable_tiles(tmp_path):
    import numpy as np
    import torch

    from gansn.report.points import MIN_TILE_PX, _readable, grid_tiles
    from gansn.sampling import render_points, to_grid

    grid = to_grid(torch.rand(64, 1, 28, 28) * 2 - 1, nrow=8)
    img = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert grid_tiles(img, 64, 8) == (8, 8, 28, 28)
    density = (render_points(torch.randn(500, 2)).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert grid_tiles(density, 2000, 8) is None

    run = Run(tmp_path, "run", {"grid": {"n": 64, "nrow": 8}}, [])
    big, what = _readable(img, run)
    scale = big.shape[0] // img[: 2 + 4 * 30].shape[0]
    assert 28 * scale >= MIN_TILE_PX and big.shape[:2] == (scale * (2 + 4 * 30),) * 2
    assert "first 16 of 64 tiles" in what and "nearest neighbour" in what


def test_a_metric_or_loss_that_went_nan_shows_as_diverged_never_as_an_earlier_value(tmp_path):
    sweep = tmp_path / "sweep"
    cfg = {**BASE, "d_norm": {"name": "none"}}
    fids = {0: [30.0, 20.0, 10.0], 1: [30.0, 20.0, "nan"], 2: [40.0, 30.0], 3: [50.0, 40.0, 30.0]}
    for seed, values in fids.items():
        run = sweep / str(seed)
        _write_run(run, {**cfg, "seed": seed}, ["norm@d_norm=none", f"seed={seed}"], fid=0.0)
        lines = [{"step": 10 * (i + 1), "metrics/fid": v} for i, v in enumerate(values)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    # seed 2: the loss went NaN at step 25, after two evaluations; the trainer stopped there
    (sweep / "2" / "status.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "step": 25,
                "error": "loss/d is nan at G step 25; training stopped. last.pt (step 20) kept",
            }
        )
    )
    out = build_report(sweep, tmp_path / "rep", plots=False, checkpoint_figures=False)
    (setting,) = json.loads((out / "summary.json").read_text())["settings"]
    fid = setting["rows"][0]["metrics"]["metrics/fid:final"]
    # seeds 0 and 3 score the mean of their last 3 evaluations: 20 and 40
    assert fid["values"] == [20.0, 40.0] and fid["n"] == 2
    assert sorted(fid["diverged"]) == [25, 30]  # the NaN loss at 25, the NaN FID at 30
    best = setting["rows"][0]["metrics"]["metrics/fid:best"]
    assert best["values"] == [10.0, 20.0, 30.0, 30.0]  # the best finite value stays a best
    md = (out / "report.md").read_text()
    assert "30 [-97.1, 157] · 2 diverged (steps 30, 25)" in md or (
        "30 [-97.1, 157] · 2 diverged (steps 25, 30)" in md
    )
    assert "Failed runs" in md and "RuntimeError" not in md


# ------------------------------------------------------------------- what a reader sees


def md_table_headers(md: str) -> list[list[str]]:
    """The header cells of every markdown table in ``md``."""
    lines = md.splitlines()
    return [
        [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
        for ln, nxt in itertools.pairwise(lines)
        if ln.startswith("|") and nxt.startswith("|---")
    ]


def test_a_table_too_wide_for_the_page_is_split_repeating_its_key_columns():
    from gansn.report.render import MAX_COLUMNS, split_table

    wide = Table(["Norm", "n", *map(str, range(20))], [["a", 1, *range(20)]], "cap")
    parts = split_table(wide, keep=2)
    assert [len(p.headers) for p in parts] == [12, 12]
    assert all(p.headers[:2] == ["Norm", "n"] and p.rows[0][:2] == ["a", 1] for p in parts)
    assert [h for p in parts for h in p.headers[2:]] == list(map(str, range(20)))
    assert [p.caption for p in parts] == ["cap (part 1 of 2)", "cap (part 2 of 2)"]
    narrow = Table(["a"], [[1]])
    assert split_table(narrow) == [narrow]
    doc = Document("T")
    doc.table(wide.headers, wide.rows)
    assert all(len(b.headers) <= MAX_COLUMNS for b in doc.blocks)
    # a table the page cannot hold scrolls in its own box, never the whole page
    assert to_html(doc).count('<div class="table-wrap"><table>') == 2


def test_report_tables_fit_the_page_with_quality_and_lipschitz_apart(built):
    from gansn.report.render import MAX_COLUMNS

    out, _ = built
    tables = md_table_headers((out / "report.md").read_text())
    assert tables and all(len(h) <= MAX_COLUMNS for h in tables), [len(h) for h in tables]
    assert ["Norm", "Lip. upper (end)", "Lip. lower (end)"] in tables
    final = next(h for h in tables if h[:3] == ["Norm", "n", "Seeds"])
    best = next(h for h in tables if h[0] == "Norm" and "FID (best), raw 2-D points" in h)
    assert all("(final)" in h for h in final[3:]) and all("(best)" in h for h in best[1:])
    html = (out / "report.html").read_text()
    assert html.count("<table>") == html.count('<div class="table-wrap"><table>')


def test_the_default_title_names_the_experiment_not_the_folder(sweep, tmp_path):
    out = build_report(sweep, tmp_path / "rep", plots=False)
    title = json.loads((out / "summary.json").read_text())["title"]
    assert title == "Normalization study: norm_study_toy (ring8, mlp)"
    assert (out / "report.md").read_text().startswith(f"# {title}\n")
    # no experiment preset: the dataset and model; a folder called logs says nothing
    logs = tmp_path / "logs"
    _write_run(logs / "0", {**BASE, "d_norm": {"name": "none"}, "seed": 0}, ["seed=0"], fid=1.0)
    out = build_report(logs, tmp_path / "rep2", plots=False)
    title = json.loads((out / "summary.json").read_text())["title"]
    assert title == "Normalization study: ring8, mlp"


def test_symlinked_run_dirs_are_collected_once_and_a_link_loop_ends(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    for seed in (0, 1):
        cfg = {**BASE, "d_norm": {"name": "none"}, "seed": seed}
        _write_run(elsewhere / f"s{seed}", cfg, ["norm@d_norm=none", f"seed={seed}"], fid=seed)
    study = tmp_path / "study"
    study.mkdir()
    (study / "a").symlink_to(elsewhere / "s0", target_is_directory=True)
    (study / "b").symlink_to(elsewhere / "s1", target_is_directory=True)
    (study / "b_again").symlink_to(elsewhere / "s1", target_is_directory=True)  # one run twice
    (study / "loop").symlink_to(study, target_is_directory=True)  # a link back up the tree
    nested = study / "more"
    nested.mkdir()
    (nested / "c").symlink_to(elsewhere / "s0", target_is_directory=True)  # s0 again, deeper
    assert [r.rel for r in collect_runs(study)] == ["a", "b"]
    out = build_report(study, tmp_path / "rep", plots=False)
    summary = json.loads((out / "summary.json").read_text())
    assert [r["dir"] for r in summary["runs"]] == ["a", "b"]
    assert summary["settings"][0]["rows"][0]["seeds"] == [0, 1]
    assert str(elsewhere) not in (out / "report.md").read_text()


def test_lipschitz_figure_gives_each_norm_its_own_log_panel(sweep, figures, tmp_path):
    from gansn.report import plots

    (setting,) = _study(sweep).settings
    caption = plots.lipschitz_figure(setting, tmp_path / "lip.png")
    assert caption is not None and "one panel per normalization" in caption
    fig = figures["lip.png"]
    # upper 1 (spectral) and 50 (none), lower max(0.3, 0.5); the titles give the last values
    assert [ax.get_title() for ax in fig.axes] == ["spectral: 0.5 ≤ L ≤ 1", "none: 0.5 ≤ L ≤ 50"]
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)


def test_a_curve_spanning_decades_is_drawn_on_a_log_axis(sweep, figures, tmp_path):
    from gansn.report import plots

    (setting,) = _study(sweep).settings  # FID 5 to 50: one decade, a linear axis
    caption = plots.curves_figure(setting, tmp_path / "lin.png", tag="metrics/fid")
    assert "log" not in caption and figures["lin.png"].axes[0].get_yscale() == "linear"
    runs = tmp_path / "s"
    for i, (norm, fid) in enumerate([("spectral", 0.005), ("none", 0.01), ("batch", 3.0)]):
        run = runs / str(i)
        _write_run(run, {**BASE, "d_norm": {"name": norm}, "seed": 0}, [f"norm@d_norm={norm}"], 0)
        lines = [{"step": s, "metrics/fid": fid * (1 + s / 100)} for s in range(10, 70, 10)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (setting,) = _study(runs).settings
    caption = plots.curves_figure(setting, tmp_path / "log.png", tag="metrics/fid")
    assert "log scale: the values span 0.0055 to 4.8" in caption
    assert figures["log.png"].axes[0].get_yscale() == "log"
    assert not plots.spans_decades([0.0, 5.0]) and not plots.spans_decades([-1.0, 500.0])


def test_the_points_figure_names_only_what_it_draws(sweep, figures, tmp_path):
    from gansn.report import points as plots

    (setting,) = _study(sweep).settings  # ring8: mode centers, whose real data hides under ×
    caption = plots.points_figure(setting, tmp_path / "points.png", n=100)
    title = figures["points.png"].get_suptitle()
    assert title.startswith("Generated (dots), modes of the real data (×)")
    assert "grey" not in title and "grey" not in caption


def test_a_density_image_is_darkened_so_single_samples_show():
    import torch

    from gansn.report.points import _readable
    from gansn.sampling import render_points

    # as toy runs drew it before gansn added axes: a bare, pale 2-D histogram
    pts = torch.randn(500, 2)
    img = (render_points(pts, axes=False).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    img = 255 - (255 - img) // 3
    no_config = Run(Path("run"), "run", {}, [])  # a run killed before it saved its config
    big, what = _readable(img, no_config)
    assert "darkened" in what and "thickened" in what
    framed = (render_points(pts).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert _readable(framed, no_config)[1] == "the whole image"  # left as drawn

    def visible(im):
        return int((im.min(axis=2) < 160).sum())

    assert visible(big) > 4 * visible(img)


def test_a_density_image_has_axes_a_key_and_visible_lone_samples():
    import torch

    from gansn.sampling import render_points

    centers = np.array([[1.0, 0.0], [-1.0, 0.0]])
    bare = render_points(torch.tensor([[0.47, 0.47]]), centers, axes=False).numpy()
    assert bare.shape == (3, 256, 256)
    # extent = 1.5 * max|center| + 0.1 = 1.6; 128 bins a side, each 2x2 pixels, y up
    b = int((0.47 + 1.6) / 3.2 * 128)  # 82
    c, r = 2 * b, 2 * (127 - b)
    assert bare[:, r : r + 2, c : c + 2].max() <= 0.55  # a lone sample: a dark 2x2 dot
    assert (bare.min(axis=0) < 0.6).sum() == 4 + 2 * 25  # the dot and two 5x5 mode marks
    mode_c = int((1.0 + 1.6) / 3.2 * 255)
    assert bare[0, 128, mode_c] == 1.0 and bare[1, 128, mode_c] == 0.0  # red
    framed = render_points(torch.tensor([[0.47, 0.47]]), centers).numpy()
    assert framed.shape[1] > 256 and framed.shape[2] > 256  # margins for ticks and the key
    # the plot sits inside the frame unchanged (top margin 18, left 34)
    inner = np.round(framed[:, 18 : 18 + 256, 34 : 34 + 256] * 255)
    assert np.array_equal(inner, np.round(bare * 255))
    margin = framed[:, 256 + 18 :, :]  # below the plot: tick labels
    assert (margin < 0.5).any()
