"""One typed config: each key's rule, default and help live once, in gansn.schema.

The defaults are checked against values written out here (what conf/train.yaml and
conf/metrics/none.yaml held before the table replaced them), both for a config composed
by Hydra and for one built by hand and completed; the YAML files are checked to state only
what differs from them; and gansn/ is checked for config reads with a default of their own.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gansn import schema
from gansn.config import complete, compose, config_dir, to_plain
from gansn.schema import ABSENT, METRICS, TRAIN, Key, Node, defaults, entries

ROOT = Path(__file__).resolve().parents[1]
CONF = config_dir()

# conf/train.yaml's values before its keys moved into gansn/schema.py (independent reference)
OLD_TRAIN_YAML = {
    "seed": 0,
    "steps": 1200,
    "steps_by_setting": None,
    "batch_size": 64,
    "g_batch_size": None,
    "n_dis": 1,
    "update": "alternating",
    "setting": None,
    "device": "auto",
    "threads": 0,
    "flush_denormal": True,
    "amp": "off",
    "compile": False,
    "channels_last": False,
    "distributed": {"backend": "auto", "sync_bn": False},
    "resume": None,
    "imports": [],
    "report": False,
    "study": {"last_k": 3, "claims": []},
    "ema": {"enabled": True, "decay": 0.999, "start": 0},
    "log_every": 25,
    "sample_every": 200,
    "ckpt_every": 200,
    "keep_every": 0,
    "lipschitz_every": 200,
    "lipschitz": {"n_samples": 32, "n_iter": 3},
    "grid": {"n": 64, "nrow": 8},
}
# conf/metrics/none.yaml's values before (cache_dir: ${oc.env:GANSN_CACHE,'~/.cache/gansn'})
OLD_METRICS_NONE = {
    "eval_every": 0,
    "list": [],
    "best": None,
    "features": "auto",
    "num_real": 2000,
    "num_fake": 2000,
    "bn_updates": 0,
    "batch_size": 100,
    "real_split": "train",
    "options": {},
    "inception_weights": None,
    "download": False,
}
# the least a hand-built config must say: what has no single default
HAND_BUILT = {
    "model": {"name": "dcgan", "z_dim": 128},
    "g_norm": {"name": "batch"},
    "d_norm": {"name": "spectral"},
    "dataset": {"name": "fake", "n": 32, "img_size": 32},
    "loss": {"name": "hinge"},
    "optim": {"g": {"lr": 2e-4}, "d": {"lr": 2e-4}},
}


def subset(small: dict[str, Any], big: dict[str, Any]) -> dict[str, Any]:
    """``big`` cut down to the keys (nested) of ``small``."""
    return {
        k: subset(v, big[k]) if isinstance(v, dict) and v else big.get(k, "<absent>")
        for k, v in small.items()
    }


# ------------------------------------------------------------------ the defaults themselves


def test_composed_defaults_are_the_old_yaml_values(monkeypatch):
    monkeypatch.setenv("GANSN_CACHE", "/tmp/from-env")
    cfg = to_plain(compose([]))
    assert subset(OLD_TRAIN_YAML, cfg) == OLD_TRAIN_YAML
    assert subset(OLD_METRICS_NONE, cfg["metrics"]) == OLD_METRICS_NONE
    assert cfg["metrics"]["cache_dir"] == "/tmp/from-env"  # the interpolation, resolved
    assert "_partial_" not in cfg["optim"]["g"]  # declared once, never read: gone


def test_a_hand_built_config_completes_to_the_same_defaults(monkeypatch):
    monkeypatch.setenv("GANSN_CACHE", "/tmp/from-env")
    before = yaml.safe_dump(HAND_BUILT)
    cfg = complete(HAND_BUILT)
    assert yaml.safe_dump(HAND_BUILT) == before  # the input is not changed
    assert subset(OLD_TRAIN_YAML, cfg) == OLD_TRAIN_YAML
    assert subset(OLD_METRICS_NONE, cfg["metrics"]) == OLD_METRICS_NONE
    assert cfg["metrics"]["cache_dir"] == "/tmp/from-env"
    assert cfg["optim"]["g"] == {"lr": 2e-4, "_target_": "torch.optim.Adam"}
    assert cfg["optim"]["lr_decay"] == "none" and cfg["model"]["width"] == 1.0
    assert "n" in cfg["dataset"] and "root" not in cfg["dataset"]  # no default: stays absent
    schema.validate_train_config(cfg)
    # the Hydra path (completed for the keys older runs added with +key=) and the Python
    # path agree on every key that has a default
    composed = complete(compose(["model.width=1.0"]))
    for key, entry in entries(TRAIN):
        if entry.default is not ABSENT:
            path = key.split(".")
            a, b = cfg, composed
            for p in path:
                a, b = a[p], b[p]
            assert a == b, key


def test_keys_older_runs_added_with_plus_still_take_plus(monkeypatch):
    """``+num_workers=2`` and ``+lipschitz.strict=true`` composed before these keys were
    declared; a run saved with them in its overrides must still compose (and resume)."""
    cfg = to_plain(compose(["+num_workers=2", "+lipschitz.strict=true"]))
    assert cfg["num_workers"] == 2 and cfg["lipschitz"]["strict"] is True
    assert "num_workers" not in to_plain(compose([]))
    assert complete(compose([]))["num_workers"] == 0


def test_complete_keeps_given_values_and_fills_null_groups():
    cfg = complete({**HAND_BUILT, "log_every": 7, "lipschitz": None, "ema": {"decay": 0.5}})
    assert cfg["log_every"] == 7
    assert cfg["lipschitz"]["n_samples"] == 32 and cfg["lipschitz"]["n_iter"] == 3
    assert cfg["ema"] == {"decay": 0.5, "enabled": True, "start": 0}
    assert complete(cfg) == cfg  # idempotent


def test_lipschitz_defaults_are_the_trackers_where_training_does_not_choose_its_own():
    from gansn.lipschitz.tracker import LipschitzTracker

    params = inspect.signature(LipschitzTracker.__init__).parameters
    for key, entry in schema.LIPSCHITZ.keys.items():
        if key in ("n_samples", "n_iter", "strict"):  # the hook's, chosen for training
            continue
        assert entry.default == params[key].default, key
    assert params["n_iter"].default == 5 and schema.LIPSCHITZ.keys["n_iter"].default == 3


def test_every_declared_default_obeys_its_own_rule():
    def walk(node: Node, prefix: str = "") -> None:
        for key, entry in node.keys.items():
            if isinstance(entry, Node):
                walk(entry, f"{prefix}{key}.")
            elif isinstance(entry, Key) and entry.default is not ABSENT:
                assert entry.rule.problem(prefix + key, entry.value()) is None, prefix + key

    walk(TRAIN)
    for name in ("eval", "sample", "lipschitz"):
        opts = __import__(f"gansn.cli.{name}", fromlist=["OPTIONS"]).OPTIONS
        walk(Node({k: e for k, e in opts.keys.items() if e.default != schema.REQUIRED}))


def test_every_key_with_a_default_has_help():
    missing = [k for k, e in entries(TRAIN) if e.default is not ABSENT and not e.help]
    assert not missing


# ------------------------------------------------------ the YAML states only what differs


def test_train_yaml_holds_no_key_of_its_own():
    cfg = yaml.safe_load((CONF / "train.yaml").read_text())
    assert set(cfg) == {"defaults", "hydra"}
    assert cfg["defaults"][0] == "gansn_defaults"


@pytest.mark.parametrize("path", sorted((CONF / "metrics").glob("*.yaml")), ids=lambda p: p.stem)
def test_metrics_presets_state_only_what_differs(path):
    preset = yaml.safe_load(path.read_text()) or {}
    for key, value in preset.items():
        assert key in METRICS.keys, key
        assert value != METRICS.keys[key].default, f"{path.name} repeats {key}'s default"


def test_group_options_repeat_no_default():
    """A group option (model/dcgan.yaml, optim/adam.yaml, ...) states no top-level default
    of its node, except optim's _target_, which names what the option is."""
    base = defaults(TRAIN)
    for group in ("model", "optim"):
        for path in sorted((CONF / group).glob("*.yaml")):
            cfg = yaml.safe_load(path.read_text())
            for key, value in cfg.items():
                if key in base[group] and not isinstance(value, dict):
                    assert value != base[group][key], f"{group}/{path.name}: {key}"


def test_train_help_shows_each_default_and_its_help():
    from gansn.cli.help import help_text

    out = help_text()
    for key, entry in entries(TRAIN):
        if entry.default is not ABSENT:
            assert f"{key}={schema.show(entry.default)}" in out, key
            assert entry.help in out, key
    assert "log_every=25" in out and "lipschitz.n_samples=32" in out
    assert "metrics.cache_dir=$GANSN_CACHE or ~/.cache/gansn" in out


def test_eval_shares_the_metric_options_with_training(monkeypatch):
    from gansn.cli import eval as cli
    from gansn.cli.args import help_text

    for key in ("features", "batch_size", "inception_weights", "download", "cache_dir"):
        assert cli.OPTIONS.keys[key] is schema.METRIC_KEYS[key], key
    for key in ("num_real", "num_fake", "real_split"):  # a standalone evaluation's defaults
        assert cli.OPTIONS.keys[key].rule is schema.METRIC_KEYS[key].rule
    assert cli.OPTIONS.keys["num_real"].default == 10000
    assert cli.OPTIONS.keys["real_split"].default == "test"
    text = help_text(cli.USAGE, cli.OPTIONS)
    assert "real samples compared against (null: all)" in text
    assert "default 10000; null or a positive integer" in text


# ------------------------------------------------------------ old configs still load


def test_an_old_saved_config_with_partial_completes_and_validates():
    """Runs saved before this change carry ``_partial_: true`` and lack the Lipschitz
    tracker's keys: they complete, validate, and build their optimizers."""
    import torch

    from gansn.training.build import build_optimizer

    saved = ROOT / "docs/showcase/pacgan/logs/ring8/s0/config.yaml"
    old = yaml.safe_load(saved.read_text())
    assert old["optim"]["g"]["_partial_"] is True
    cfg = complete(old)
    schema.validate_train_config(cfg)
    assert cfg["lipschitz"]["n_iter_init"] == 50
    opt = build_optimizer(cfg["optim"]["g"], [torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.Adam)


# --------------------------------------------------- no config read with its own default

# A config read with a default of its own: ``<receiver>.get("<key>", <default>)`` or
# ``<receiver>.get("<key>") or <default>`` where the receiver is a config by gansn's naming
# (cfg, config, opt_cfg, metrics_cfg, cfg["optim"], cfg.get("lipschitz", {}), ...).
# ``.get`` on other dicts (a checkpoint's state, a metric record, os.environ) is not checked.
CONFIG_GET = re.compile(
    r"""\b\w*(?:cfg|config)\w*(?:\[[^\]]*\]|\.get\([^()]*\))*"""  # the config receiver
    r"""\.get\(\s*["'][\w.]+["']\s*(?:,\s*[^)\s]|\)\s*or\s+[^\s)])"""  # ("key", default)
)


def config_reads_with_defaults(text: str) -> list[str]:
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        if CONFIG_GET.search(code):
            lines.append(f"{number}: {line.strip()}")
    return lines


def test_the_scan_finds_what_it_must_and_nothing_else():
    found = config_reads_with_defaults(
        'a = cfg.get("log_every", 0)\n'
        'b = cfg["optim"].get("lr_decay", "none")\n'
        'c = int(cfg.get("lipschitz", {}).get("n_samples", 64))\n'
        'd = metrics_cfg.get("bn_updates") or 0\n'
        'e = config.get("report", False)\n'
        'f = state.get("seed", self.seed)\n'  # a checkpoint's state: not a config
        'g = cfg.get("resume")\n'  # no default of its own
        'h = cfg["log_every"]\n'
        'i = record.get("step", 0)\n'
    )
    assert [f.split(":")[0] for f in found] == ["1", "2", "3", "4", "5"]


def test_no_config_read_carries_a_default_of_its_own():
    bad = []
    for path in sorted((ROOT / "gansn").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        ast.parse(path.read_text())  # a file the scan reads as text is valid Python
        bad += [f"{rel}:{line}" for line in config_reads_with_defaults(path.read_text())]
    assert not bad, "config reads with their own defaults (use gansn.schema):\n" + "\n".join(bad)
