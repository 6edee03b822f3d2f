"""The one-command study: a real (tiny) multirun sweep ends with a report of its runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# a real sweep in subprocesses, ending with its report
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    pytest.importorskip("matplotlib")
    tmp = tmp_path_factory.mktemp("study")
    sweep = tmp / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "gansn.train",
        "-m",
        "experiment=norm_study_toy",
        "dataset=ring8",
        "norm@d_norm=spectral,none",
        "seed=0,1",
        "steps=4",
        "dataset.n=512",
        "batch_size=32",
        "model.options.hidden=16",
        "grid.n=64",
        "metrics.eval_every=2",
        "metrics.num_real=128",
        "metrics.num_fake=128",
        "lipschitz_every=2",
        "lipschitz.n_samples=16",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def test_sweep_writes_one_run_per_cell(study):
    cells = []
    for i in range(4):
        cfg = json.loads((study / str(i) / "status.json").read_text())
        assert cfg["status"] == "completed" and cfg["step"] == 4
        ckpt = study / str(i) / "checkpoints" / "last.pt"
        assert ckpt.is_file()
        import torch

        c = torch.load(ckpt, weights_only=True)
        cells.append((c["spec"]["d_norm"]["name"], c["config"]["seed"]))
    assert sorted(cells) == [("none", 0), ("none", 1), ("spectral", 0), ("spectral", 1)]


def test_sweep_end_builds_the_report(study):
    report = study / "report"
    md = (report / "report.md").read_text()
    assert (report / "report.html").is_file()
    summary = json.loads((report / "summary.json").read_text())
    text = json.dumps(summary)
    for norm in ("spectral", "none"):
        assert norm in md
    for column in ("FID (final)", "Modes (final)", "Lip. upper", "Lip. lower", "Recall"):
        assert column.lower() in md.lower(), column
    assert "gansn-train -m" in md  # the exact command is recorded
    assert "spectral" in text and "none" in text
    pngs = {p.name for p in report.glob("*.png")}
    for kind in ("fid", "lipschitz", "spectra", "points", "samples"):
        assert any(kind in name for name in pngs), (kind, sorted(pngs))
    # 4 steps rarely cover a mode: a curve flat at one value for every run is listed as not
    # drawn (with the value), never drawn as an empty-looking plot
    flat = [m for m in summary["missing_figures"] if m["figure"] == "Modes vs step"]
    assert any("modes" in name for name in pngs) != bool(flat), (sorted(pngs), flat)
    assert all(m["reason"].startswith("every run logged") for m in flat)


def test_report_states_one_protocol(study):
    md = (study / "report" / "report.md").read_text()
    assert "Metric protocol:" in md and "DIFFER" not in md
    assert "num_real=128" in md and "features=raw" in md
