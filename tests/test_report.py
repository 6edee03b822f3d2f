"""gansn-report: aggregation math, a synthetic sweep end to end, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

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
    assert aggregate([float("nan"), None]) is None
    s = aggregate([1.0, float("inf"), 3.0])
    assert s is not None and s.n == 2 and s.mean == pytest.approx(2.0)
    assert format_stat(s) == "2 ± 1.4"


def test_best_keys_respects_direction_and_ties():
    a, b, c = aggregate([1.0, 3.0]), aggregate([5.0]), aggregate([2.0, 2.0])
    assert best_keys({"a": a, "b": b, "c": c}, "min") == {"a", "c"}  # 2 == 2: tie
    assert best_keys({"a": a, "b": b, "c": c}, "max") == {"b"}
    assert best_keys({"a": a, "b": None}, "min") == set()  # nothing to compare with
    assert best_keys({"a": a, "b": b}, None) == set()


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
                    "protocol": {"n_real": 100, "n_fake": 100, "features": "toy"},
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


def test_report_files_and_figures(built):
    out, summary = built
    for name in ("report.md", "report.html", "summary.json"):
        assert (out / name).is_file()
    figs = summary["settings"][0]["figures"]
    assert set(figs) == {
        f"fig_s1_{k}.png"
        for k in ("metrics_fid", "modes_covered", "lipschitz", "spectra", "points", "samples")
    }
    for f in figs:
        assert (out / f).stat().st_size > 1000
    assert summary["missing_figures"] == []


def test_report_table_values_and_best(built):
    out, summary = built
    (setting,) = summary["settings"]
    rows = {r["norm"]: r for r in setting["rows"]}
    assert list(rows) == ["spectral", "none"]
    sp, no = rows["spectral"], rows["none"]
    assert sp["seeds"] == [0, 1] and no["seeds"] == [0, 2]
    fid = sp["metrics"]["metrics/fid:final"]
    assert fid["mean"] == pytest.approx(6.0) and fid["std"] == pytest.approx(math.sqrt(2))
    assert fid["n"] == 2
    assert no["metrics"]["metrics/fid:best"]["mean"] == pytest.approx(25.0)
    assert setting["best"]["metrics/fid:final"] == ["spectral"]
    assert setting["best"]["metrics/precision:final"] == ["none"]  # higher is better
    assert setting["best"]["modes/covered:final"] == ["none", "spectral"]  # tie
    assert setting["best"]["lipschitz:upper"] == []  # not ranked
    assert no["metrics"]["lipschitz:upper"]["mean"] == pytest.approx(50.0)
    assert sp["metrics"]["lipschitz:lower"]["mean"] == pytest.approx(0.5)  # max(0.3, 0.5)
    columns = [c["id"] for c in setting["columns"]]
    assert "metrics/kid:final" not in columns  # no data, no column
    md = (out / "report.md").read_text()
    assert "| spectral | 2 (+1 excl.) | 0, 1 | **6 ± 1.4** |" in md
    assert md.count("**8 ± 0**") == 4  # modes covered final and best: a tie, both bold
    assert "gansn-train -m norm@d_norm=spectral,none seed=0,1,2" in md
    html = (out / "report.html").read_text()
    assert "<strong>6 ± 1.4</strong>" in html and 'src="fig_s1_spectra.png"' in html


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
    with pytest.raises(ReportDependencyError, match=r"pip install 'gansn\[report\]'"):
        require_matplotlib()


# ------------------------------------------------------------------------------------ CLI


def test_cli_main(sweep, tmp_path, capsys):
    from gansn.cli.report import main

    out = tmp_path / "cli"
    assert main([str(sweep), "--out", str(out), "--no-plots", "--title", "CLI", "-q"]) == 0
    assert str(out / "report.md") in capsys.readouterr().out
    assert (out / "report.md").read_text().startswith("# CLI\n")
    assert main([str(tmp_path / "nope")]) == 2


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
