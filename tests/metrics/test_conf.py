"""conf/metrics: every file has the same commented keys and names only real metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gansn.metrics import METRICS, from_config, metric_mode

CONF = Path(__file__).resolve().parents[2] / "conf" / "metrics"
FILES = sorted(CONF.glob("*.yaml"))
KEYS = {
    "eval_every",
    "list",
    "best",
    "features",
    "num_real",
    "num_fake",
    "batch_size",
    "real_split",
    "options",
    "inception_weights",
    "download",
    "cache_dir",
}


def test_expected_files() -> None:
    assert {p.stem for p in FILES} >= {"none", "default", "inception", "toy"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_schema_and_comments(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    assert set(cfg) == KEYS
    for line in path.read_text().splitlines():
        if re.match(r"^[a-z_]+:", line):
            assert "#" in line, f"{path.name}: key without a comment: {line}"
    for entry in cfg["list"]:
        name = entry if isinstance(entry, str) else entry["name"]
        assert name in METRICS, name
    assert cfg["features"] in {"auto", "classifier", "inception", "raw"}


def test_from_config_builds_an_evaluator(ring) -> None:
    cfg = yaml.safe_load((CONF / "toy.yaml").read_text())
    cfg["cache_dir"] = None
    ev = from_config(cfg, ring, progress=False)
    res, proto = ev(ring)
    assert res["modes/covered"] == 8 and "metrics/fid" in res
    assert proto["features"] == "raw" and proto["num_fake"] == min(2500, len(ring))


def test_metric_mode() -> None:
    assert metric_mode("metrics/fid") == "min"
    assert metric_mode("metrics/fid_inception") == "min"
    assert metric_mode("metrics/precision") == "max"
    assert metric_mode("modes/covered") == "max"
    assert metric_mode("modes/kl") == "min"
