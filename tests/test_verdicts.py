"""scripts/fmnist_verdicts.py: the pre-registered verdict rules on a hand-made summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mod():
    spec = importlib.util.spec_from_file_location(
        "_verdicts", ROOT / "scripts" / "fmnist_verdicts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_needs_ranges_apart_and_two_seeds(mod):
    assert mod.compare([100, 120], [130, 200], lower_is_better=True) == "SN better"
    assert mod.compare([100, 140], [130, 200], lower_is_better=True) == "overlap"
    assert mod.compare([0.3, 0.4], [0.1, 0.2], lower_is_better=False) == "SN better"
    assert mod.compare([0.0, 0.0], [0.0, 0.0], lower_is_better=False) == "overlap"
    assert mod.compare([300, 310], [100, 120], lower_is_better=True) == "rival better"
    assert mod.compare([100], [200], lower_is_better=True) == "SN better (1 seed)"
    assert mod.compare([], [200], lower_is_better=True) == "–"
    assert mod.claim_verdict(["SN better"] * 3) == "reproduced"
    assert mod.claim_verdict(["SN better", "overlap", "SN better"]) == "inconclusive"
    assert mod.claim_verdict(["SN better (1 seed)"] * 3) == "inconclusive"
    assert mod.claim_verdict(["SN better", "rival better"]) == "not reproduced"


def _row(norm, fid):
    stat = {"mean": sum(fid) / len(fid), "std": None, "n": len(fid), "values": fid}
    return {"norm": norm, "metrics": {"metrics/fid:final": stat}}


def _summary():
    rows_f = [_row("spectral", [150, 160]), _row("batch", [300, 320]), _row("layer", [200, 400])]
    rows_f.append(_row("weight", [250, 260]))
    breadth = {"runs": {"spectral": [[0.5, 0.7], [0.6, 0.6]], "weight": [[0.1, 0.3], [0.2, 0.2]]}}
    return {
        "directions": {"metrics/fid": "min"},
        "settings": [
            {
                "values": {"setting": "C"},
                "rows": [_row("spectral", [100, 110])],
                "spectra_breadth": None,
            },
            {"values": {"setting": "F"}, "rows": rows_f, "spectra_breadth": breadth},
        ],
    }


def test_verdicts_on_a_hand_made_summary(mod, tmp_path, capsys):
    text = mod.verdicts(_summary(), ["metrics/fid:final"], "F")
    assert "| F | metrics/fid:final | batch | 150, 160 | 300, 320 | SN better |" in text
    assert "| F | metrics/fid:final | layer | 150, 160 | 200, 400 | SN better |" in text
    assert "**Verdict at setting F: reproduced.**" in text
    # breadth means per seed: SN 0.6 and 0.6, weight 0.2 and 0.2
    assert "| F | 0.6, 0.6 | 0.2, 0.2 | reproduced |" in text
    assert "| C | – | – | – |" in text
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    assert mod.main([str(tmp_path)]) == 0
    assert "Verdict at setting F" in capsys.readouterr().out


def test_a_rival_better_in_every_seed_is_not_reproduced(mod):
    s = _summary()
    s["settings"][1]["rows"][3] = _row("weight", [90, 95])
    assert "**Verdict at setting F: not reproduced.**" in mod.verdicts(
        s, ["metrics/fid:final"], "F"
    )


def _quick():
    """One seed, as the quick variant: SN beats batch and weight, loses to layer at F."""
    rows_f = [_row("spectral", [150]), _row("batch", [300]), _row("layer", [140])]
    rows_f.append(_row("weight", [250]))
    breadth = {"runs": {"spectral": [[0.5, 0.7]], "weight": [[0.1, 0.3]]}}
    return {
        "directions": {"metrics/fid": "min"},
        "settings": [
            {"values": {"setting": "C"}, "rows": [_row("spectral", [100])]},
            {"values": {"setting": "F"}, "rows": rows_f, "spectra_breadth": breadth},
        ],
    }


def test_quick_keeps_a_conclusion_only_when_it_points_the_same_way(mod):
    text = mod.quick_agreement(_summary(), _quick(), ["metrics/fid:final"])
    # the full study decides batch, layer, weight (SN better) and the spectra at F
    assert "| F / metrics/fid:final / batch | SN better | SN better (1 seed) | yes |" in text
    assert "| F / metrics/fid:final / layer | SN better | rival better (1 seed) | no |" in text
    assert "| F / spectra breadth / weight | SN better | SN better (1 seed) | yes |" in text
    assert "**Quick keeps the full study's conclusions: no** (3 of 4 decided" in text
    # ranks of the norms' mean FID at F: full 155, 310, 300, 255 -> quick 150, 300, 140, 250
    rho = __import__("scipy.stats").stats.spearmanr([155, 310, 300, 255], [150, 300, 140, 250])
    assert f"- F: rho = {rho.statistic:.2f} over 4 norms" in text
    assert "- C: 1 norms in both, too few to rank" in text


def test_quick_against_an_undecided_study_and_the_cli(mod, tmp_path, capsys):
    full = _summary()
    full["settings"][1]["rows"] = [_row("spectral", [100, 400]), _row("batch", [200, 300])]
    full["settings"][1]["spectra_breadth"] = None
    text = mod.quick_agreement(full, _quick(), ["metrics/fid:final"])
    assert "decides no comparison, so the quick variant has none to keep" in text
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "summary.json").write_text(json.dumps(_summary()))
    (tmp_path / "quick.json").write_text(json.dumps(_quick()))
    assert mod.main([str(tmp_path / "full"), "--quick", str(tmp_path / "quick.json")]) == 0
    assert "Quick keeps the full study's conclusions: no" in capsys.readouterr().out
    with pytest.raises(mod.ConfigError, match="does not exist"):
        mod.main([str(tmp_path / "full"), "--quick", str(tmp_path / "nope")])
