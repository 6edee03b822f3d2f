"""scripts/verdicts.py on hand-made summaries, and the committed study reports: portable and
rebuildable from their committed logs with the command they state."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOWCASE = ROOT / "docs" / "showcase"
FMNIST_PRESET = ROOT / "conf" / "experiment" / "norm_study_fmnist.yaml"


@pytest.fixture(scope="module")
def mod():
    spec = importlib.util.spec_from_file_location("_verdicts", ROOT / "scripts" / "verdicts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(sn: dict[str, list[float]], rivals: dict[str, dict[str, list[float]]]) -> dict:
    def row(norm: str, vals: dict[str, list[float]]) -> dict:
        metrics = {f"{m}:final": {"values": v, "diverged": []} for m, v in vals.items()}
        return {"norm": norm, "metrics": metrics}

    rows = [row("spectral", sn)] + [row(n, v) for n, v in rivals.items()]
    return {
        "directions": {"metrics/fid": "min", "metrics/recall": "max"},
        "settings": [{"label": "setting=F", "values": {"setting": "F"}, "rows": rows}],
    }


def test_cli_prints_the_engines_verdicts(mod, tmp_path, capsys):
    good = {"metrics/fid": [100, 104, 98, 101, 99], "metrics/recall": [0.5, 0.52, 0.49, 0.5, 0.51]}
    bad = {"metrics/fid": [300, 310, 290, 305, 295], "metrics/recall": [0.1, 0.12, 0.09, 0.1, 0.11]}
    summary = _summary(good, {r: bad for r in ("batch", "layer", "weight")})
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert mod.main([str(tmp_path), "--claims", str(FMNIST_PRESET)]) == 0
    out = capsys.readouterr().out
    assert "## robust_at_F: SUPPORTED" in out
    # the spectra claims have no breadth in this summary: said, not guessed
    assert "## broad_spectra_C: INCONCLUSIVE" in out and "no setting matches" in out


def test_quick_keeps_a_conclusion_only_when_it_points_the_same_way(mod):
    claims = mod.claims_from_file(str(FMNIST_PRESET))
    good = {"metrics/fid": [100, 104, 98, 101, 99], "metrics/recall": [0.5, 0.52, 0.49, 0.5, 0.51]}
    bad = {"metrics/fid": [300, 310, 290, 305, 295], "metrics/recall": [0.1, 0.12, 0.09, 0.1, 0.11]}
    full = _summary(good, {r: bad for r in ("batch", "layer", "weight")})
    same = _summary(
        {k: v[:1] for k, v in good.items()}, {"batch": {k: v[:1] for k, v in bad.items()}}
    )
    flipped = _summary(
        {k: v[:1] for k, v in bad.items()}, {"batch": {k: v[:1] for k, v in good.items()}}
    )
    text = mod.quick_agreement(full, same, claims)
    # batch is in the quick summary and points the same way; layer and weight are missing
    assert "| robust_at_F / metrics/fid / batch | supported | subject better | yes |" in text
    assert "**Quick keeps the full study's conclusions: no** (2 of 6)." in text
    assert "| robust_at_F / metrics/fid / batch | supported | rival better | no |" in (
        mod.quick_agreement(full, flipped, claims)
    )


ABSOLUTE = re.compile(r"(?<![\w.~…])/(?:work|root|home|tmp|Users)/")


@pytest.mark.parametrize(
    "report", sorted(p.parent for p in SHOWCASE.rglob("summary.json") if "logs" not in p.parts)
)
def test_committed_reports_name_no_folder_of_the_machine_that_built_them(report):
    for name in ("report.md", "report.html", "summary.json"):
        if (report / name).is_file():
            hits = ABSOLUTE.findall((report / name).read_text())
            assert not hits, f"{report.relative_to(ROOT)}/{name}: absolute paths {hits[:3]}"


REPORTS = sorted(p.parent for p in SHOWCASE.rglob("report.md") if "logs" not in p.parts)


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.relative_to(SHOWCASE).as_posix())
def test_committed_reports_have_tables_that_fit_a_1600_px_page(report):
    """At most MAX_COLUMNS columns a table (the 21-column tables were 1,736 px wide and pushed
    the Lipschitz columns off a 1,600 px screen), and in the HTML each table in a box that
    scrolls on its own.  scripts/report_screenshots.py measures the laid-out page."""
    from gansn.report.render import MAX_COLUMNS

    lines = (report / "report.md").read_text().splitlines()
    widths = [
        len(re.split(r"(?<!\\)\|", ln)) - 2
        for ln, nxt in itertools.pairwise(lines)
        if ln.startswith("|") and nxt.startswith("|---")
    ]
    assert widths and max(widths) <= MAX_COLUMNS, widths
    html = (report / "report.html").read_text()
    assert html.count("<table>") == html.count('<div class="table-wrap"><table>') > 0
    assert ".table-wrap" in html  # the style that makes the box scroll


def test_the_fmnist_study_report_rebuilds_from_its_committed_logs(tmp_path):
    from gansn.report import build_report
    from gansn.study.verdicts import claims_from_file

    out = build_report(
        SHOWCASE / "fmnist_study" / "logs",
        tmp_path / "rep",
        plots=False,
        claims=claims_from_file(str(FMNIST_PRESET)),
    )
    new = json.loads((out / "summary.json").read_text())
    old = json.loads((SHOWCASE / "fmnist_study" / "summary.json").read_text())
    for key in ("settings", "verdicts", "last_k", "runs"):
        got, want = new[key], old[key]
        if key == "settings":  # figures are not drawn here
            got = [{**s, "figures": []} for s in got]
            want = [{**s, "figures": []} for s in want]
        assert got == want, key


def test_the_pacgan_tables_rebuild_from_their_committed_logs(tmp_path):
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("_pr", ROOT / "scripts" / "pacgan_report.py")
    pr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pr)
    assert pr.main([str(SHOWCASE / "pacgan" / "logs"), "--out", str(tmp_path)]) == 0
    new = json.loads((tmp_path / "summary.json").read_text())
    old = json.loads((SHOWCASE / "pacgan" / "summary.json").read_text())
    for ds in ("ring8", "grid25"):
        for part in ("seeds", "score", "at_epoch"):
            assert new["datasets"][ds][part] == old["datasets"][ds][part], (ds, part)
