"""conf/metrics: every file sets only known, commented keys (the rest keep their defaults,
gansn.schema.METRICS) and names only real metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gansn.metrics import METRICS, from_config, metric_mode
from gansn.schema import METRICS as METRICS_NODE
from gansn.schema import defaults

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
    "bn_updates",
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
    cfg = {**defaults(METRICS_NODE), **(yaml.safe_load(path.read_text()) or {})}
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


def test_every_registered_metric_describes_exactly_the_tags_it_returns() -> None:
    """The registry's metadata is checked against what each metric really returns."""
    import numpy as np

    from gansn.data import build_dataset
    from gansn.metrics import evaluate, metric_tags, tag_info

    ring = build_dataset({"name": "ring8", "n": 400})
    rng = np.random.default_rng(0)
    fake = ring.data.numpy()[rng.permutation(400)[:300]] + 0.01 * rng.standard_normal((300, 2))
    # every built-in metric but class_modes (needs labelled images; covered in test_evaluate)
    # and is (needs Inception logits; tests/metrics/test_inception_score.py)
    names = [n for n in METRICS.names() if n not in ("class_modes", "is")]
    options = {"kid": {"subset_size": 50, "num_subsets": 5}, "ndb": {"num_bins": 5}}
    metrics = [{"name": n, **options.get(n, {})} for n in names]
    res, _ = evaluate(metrics, ring, fake.astype(np.float32), num_real=300, num_fake=300)
    for name in names:
        declared = set(METRICS.get(name).tags)
        single, _ = evaluate([{"name": name, **options.get(name, {})}], ring, fake, num_fake=300)
        assert set(single) == declared, name
    assert set(res) <= set(metric_tags())
    assert set(METRICS.get("class_modes").tags) == {
        "modes/class_coverage",
        "modes/class_kl",
        "modes/class_confident",
        "modes/stacked_covered",
        "modes/stacked_kl",
    }
    assert tag_info("metrics/fid_inception").label == "FID"
    assert tag_info("metrics/unknown") is None
    # the study tables list these tags, in this order (the report's columns)
    assert [t for t, i in metric_tags().items() if i.table] == [
        "metrics/fid",
        "metrics/is",
        "metrics/kid",
        "metrics/precision",
        "metrics/recall",
        "metrics/density",
        "metrics/coverage",
        "modes/covered",
        "modes/high_quality",
        "modes/kl",
        "modes/class_coverage",
        "modes/class_kl",
        "modes/class_confident",
        "modes/stacked_covered",
        "modes/stacked_kl",
    ]


def test_stats_only_metrics_keep_no_feature_matrix_and_cacheable_extractors() -> None:
    from gansn.metrics import FEATURES

    assert [n for n in METRICS.names() if getattr(METRICS.get(n), "stats_only", False)] == ["fid"]
    assert {n for n in FEATURES.names() if FEATURES.get(n).cacheable} == {"raw", "inception"}
