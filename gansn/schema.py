"""Every config key and command-line option once: its rule (type and range), default and help.

A :class:`Key` per option and a :class:`Node` per config group.  From these tables come the
checks (:func:`problems`: one line per problem, naming the key and what it must be, or for
an unknown key the closest valid names), the defaults (:func:`defaults`, which
``gansn.config`` registers with Hydra's ConfigStore as the first entry of conf/train.yaml's
defaults list; :func:`complete` fills a config's absent keys with them, so code never
carries a default of its own) and the ``--help`` of ``gansn-train`` (:func:`entries`) and
of the small CLIs.

``gansn-train`` checks the composed config against :data:`TRAIN` before Hydra makes a run
dir, the trainer checks it again (the Python API), and the small CLIs check their
``key=value`` options against their own nodes, which share :data:`METRIC_KEYS`.

No torch, Hydra or registry imports here: the command line is refused before they load.
Nodes marked ``open`` take options this table does not list (a registered norm's, dataset's,
loss's or optimizer's keyword arguments), checked by their builders against the entry's
signature (:func:`gansn.registry.check_options`), with the entry's own defaults.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gansn.errors import ConfigError, close_matches
from gansn.rules import (
    Betas,
    Bool,
    Choice,
    ClaimList,
    Device,
    Dict,
    Float,
    Int,
    MetricList,
    OutFile,
    Rule,
    Str,
    StrList,
    writable_dir_problem,
)

# the rules are imported from here by the CLIs and scripts: one import for a whole option table
__all__ = [
    "Betas",
    "Bool",
    "Choice",
    "ClaimList",
    "Device",
    "Dict",
    "Float",
    "Int",
    "MetricList",
    "OutFile",
    "Rule",
    "Str",
    "StrList",
    "writable_dir_problem",
]


class _Absent:
    """The default of a key that has none: absent stays absent (e.g. a dataset's ``n``)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
REQUIRED = "???"  # a CLI option the user must give (OmegaConf's mark for a missing value)


@dataclass(frozen=True)
class FromEnv:
    """A default read from the environment variable ``var`` when it is set, else ``fallback``:
    by Hydra when it resolves the config, else when the config is completed (:meth:`value`)."""

    var: str
    fallback: str

    def value(self) -> str:
        return os.environ.get(self.var, self.fallback)

    def interpolation(self) -> str:
        return f"${{oc.env:{self.var},'{self.fallback}'}}"

    def __str__(self) -> str:
        return f"${self.var} or {self.fallback}"


@dataclass(frozen=True)
class Key:
    """One option: what its value must be, its default (``ABSENT``: none) and one line of help.

    composed: the default is in the config Hydra composes; False for keys a run could only
    add with ``+key=value`` before they were declared here (Hydra refuses ``+`` for a key
    that exists, and an older run's saved overrides must still compose): :func:`complete`
    fills them in.
    """

    rule: Rule
    default: Any = ABSENT
    help: str = ""
    composed: bool = True

    def value(self) -> Any:
        """The default as a config holds it: the environment read, containers fresh copies."""
        if isinstance(self.default, FromEnv):
            return self.default.value()
        return copy.deepcopy(self.default)

    def with_default(self, default: Any, help: str | None = None) -> Key:
        """The same option with another default (a CLI whose use differs from training's)."""
        return Key(self.rule, default, self.help if help is None else help, self.composed)


@dataclass(frozen=True)
class Node:
    """A config group: a :class:`Key` (or bare :class:`Rule`) or sub-``Node`` per key.

    open: unknown keys are passed on (a registry entry's options, checked where it is
    built); required: keys that must be present (keys with a default never are missing).
    """

    keys: Mapping[str, Key | Rule | Node] = field(default_factory=dict)
    open: bool = False
    required: tuple[str, ...] = ()
    help: str = ""


def _rule(entry: Key | Rule | Node) -> Rule | Node:
    return entry.rule if isinstance(entry, Key) else entry


def unknown_key_line(path: str, key: str, prefix: str, valid: Any) -> str:
    """``unknown key grid.rows; did you mean grid.nrow?`` (else the node's valid keys)."""
    keys = sorted(str(k) for k in valid)
    close = close_matches(key, keys)
    if close:
        return f"unknown key {path}; did you mean {' or '.join(prefix + c for c in close)}?"
    of = f" of {prefix.rstrip('.')}" if prefix else ""
    return f"unknown key {path}; valid keys{of}: {', '.join(keys)}"


def problems(cfg: Any, node: Node, prefix: str = "") -> list[str]:
    """One line per value of ``cfg`` that breaks ``node``'s rules (empty: all fine)."""
    where = prefix.rstrip(".") or "the config"
    if not isinstance(cfg, Mapping):
        return [f"{where} must be a mapping (a config group), got {cfg!r}"]
    out = []
    for key in node.required:
        if key not in cfg:
            rule = _rule(node.keys[key]) if key in node.keys else None
            what = rule.describe() if isinstance(rule, Rule) else "a config group"
            out.append(f"{prefix}{key} is missing; it must be {what}")
    for key, value in cfg.items():
        entry = node.keys.get(key)
        path = f"{prefix}{key}"
        if entry is None:
            if not node.open:
                out.append(unknown_key_line(path, key, prefix, node.keys))
            continue
        rule = _rule(entry)
        if isinstance(rule, Node):
            if value is not None or rule.required:
                out += problems(value, rule, f"{path}.")
        elif (line := rule.problem(path, value)) is not None:
            out.append(line)
    return out


def raise_problems(lines: list[str], what: str = "invalid config") -> None:
    """Raise ``ConfigError`` with one line per problem (one line in all for one problem)."""
    if len(lines) == 1:
        raise ConfigError(f"{what}: {lines[0]}")
    if lines:
        raise ConfigError(f"{what} ({len(lines)} problems):\n  - " + "\n  - ".join(lines))


def defaults(node: Node, *, hydra: bool = False) -> dict[str, Any]:
    """``node``'s default tree: every key that has a default (sub-nodes with none left out).

    hydra: the tree Hydra composes under the YAML files: environment defaults as OmegaConf
    interpolations (resolved with the config), keys not ``composed`` left out; else every
    default, the environment read now.
    """
    out: dict[str, Any] = {}
    for key, entry in node.keys.items():
        if isinstance(entry, Node) and (sub := defaults(entry, hydra=hydra)):
            out[key] = sub
        elif isinstance(entry, Key) and entry.default is not ABSENT:
            if hydra and not entry.composed:
                continue
            env = isinstance(entry.default, FromEnv)
            out[key] = entry.default.interpolation() if hydra and env else entry.value()
    return out


def complete(cfg: Mapping[str, Any], node: Node | None = None) -> dict[str, Any]:
    """``cfg`` (a plain mapping, not changed) with every absent key given its default.

    A sub-node that is absent or null gets its whole default tree; present values are kept
    as they are (not checked: :func:`problems` does that).  ``node`` is :data:`TRAIN` when
    not given, so ``complete(cfg)`` completes a training config built by hand.
    """
    node = TRAIN if node is None else node
    out = dict(cfg)
    for key, entry in node.keys.items():
        if isinstance(entry, Node):
            value = out.get(key)
            if isinstance(value, Mapping):
                out[key] = complete(value, entry)
            elif value is None and (sub := defaults(entry)):
                out[key] = sub
        elif isinstance(entry, Key) and entry.default is not ABSENT and key not in out:
            out[key] = entry.value()
    return out


def entries(node: Node, prefix: str = "") -> Iterator[tuple[str, Key]]:
    """``(dotted key, Key)`` of every key declared with a :class:`Key`, in table order."""
    for key, entry in node.keys.items():
        if isinstance(entry, Node):
            yield from entries(entry, f"{prefix}{key}.")
        elif isinstance(entry, Key):
            yield f"{prefix}{key}", entry


def show(value: Any) -> str:
    """A default as it is typed on a command line (``null``, ``true``, ``[fid, kid]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


# --- gansn-train's config (conf/train.yaml and its groups) ------------------------------------

UPDATES = ("alternating", "simultaneous")
AMP = ("off", "bf16", "fp16")
BACKENDS = ("auto", "gloo", "nccl")
CACHE = FromEnv("GANSN_CACHE", "~/.cache/gansn")

# a norm's, dataset's and loss's defaults are the registered entry's own (its signature)
NORM = Node(
    {
        "name": Key(Str(), help="registry name (gansn.nn.NORMS)"),
        "eps": Key(Float(gt=0)),
        "momentum": Key(Float(ge=0, le=1, null=True)),  # null: BN's cumulative average
        "n_power_iterations": Key(Int(1)),
        "num_groups": Key(Int(1)),
        "affine": Key(Bool()),
    },
    open=True,
)

DATASET = Node(
    {
        "name": Key(Str(), help="registry name (gansn.data.DATASETS)"),
        "root": Key(Str(null=True)),
        "split": Key(Str(null=True)),
        "n": Key(Int(1, null=True)),
        "img_size": Key(Int(1)),
        "channels": Key(Int(1, null=True)),
        "num_classes": Key(Int(1)),
        "seed": Key(Int(0)),
        "modes": Key(Int(1)),
        "side": Key(Int(1)),
        "radius": Key(Float(gt=0)),
        "spacing": Key(Float(gt=0)),
        "std": Key(Float(ge=0)),
        "download": Key(Bool()),
        "stacked": Key(Bool()),
        "labels": Key(Bool()),
        "balanced": Key(Bool()),
        "resize": Key(Choice(("resize", "pad"))),
        "interpolation": Key(Str()),
        "extensions": Key(StrList(null=True)),
    },
    open=True,
)

# keys starting with "_" other than _target_ (Hydra's _partial_, which older runs saved) pass
# as open keys and are never given to the optimizer (trainer.build_optimizer)
OPTIMIZER = Node(
    {
        "_target_": Key(Str(), "torch.optim.Adam", "optimizer class by import path"),
        "lr": Key(Float(gt=0), help="learning rate"),
        "betas": Key(Betas(), help="Adam's (beta1, beta2)"),
        "eps": Key(Float(gt=0)),
        "weight_decay": Key(Float(ge=0)),
        "momentum": Key(Float(ge=0)),
    },
    open=True,  # any keyword of the torch.optim class (build_optimizer checks its signature)
    required=("lr",),
)

# what gansn-train's metrics group and gansn-eval share (gansn-eval sets its own defaults)
METRIC_KEYS: dict[str, Key] = {
    "features": Key(Str(), "auto", "auto | classifier | inception | raw (docs/metrics.md)"),
    "num_real": Key(Int(1, null=True), 2000, "real samples compared against (null: all)"),
    "num_fake": Key(Int(1), 2000, "generated samples per evaluation"),
    "batch_size": Key(Int(1), 100, "samples per generator / feature-extractor batch"),
    "real_split": Key(Choice(("train", "test")), "train", "dataset split of the real samples"),
    "inception_weights": Key(
        Str(null=True), None, "FID Inception weights file (.pth or TorchScript .pt)"
    ),
    "download": Key(Bool(), False, "allow torch.hub to download pytorch-fid's Inception weights"),
    "cache_dir": Key(Str(null=True), CACHE, "trained classifiers and real-data statistics"),
}

METRICS = Node(
    {
        "eval_every": Key(Int(0), 0, "evaluate every N G steps (0: never during training)"),
        "list": Key(MetricList(null=True), [], "metric names / {name: ..., <option>: ...} nodes"),
        "best": Key(Str(null=True), None, "metric tag best.pt is kept by (null: no best.pt)"),
        "features": METRIC_KEYS["features"],
        "num_real": METRIC_KEYS["num_real"],
        "num_fake": METRIC_KEYS["num_fake"],
        "bn_updates": Key(Int(0), 0, "G batch-norm re-estimation batches before evaluating"),
        "batch_size": METRIC_KEYS["batch_size"],
        "real_split": METRIC_KEYS["real_split"],
        "options": Key(Dict(null=True), {}, "the feature extractor's options"),
        "inception_weights": METRIC_KEYS["inception_weights"],
        "download": METRIC_KEYS["download"],
        "cache_dir": METRIC_KEYS["cache_dir"],
    },
    help="evaluation during training (the metrics group's presets set what differs)",
)

# LipschitzTracker's keyword arguments (n_samples is the hook's); a run measures with fewer
# power iterations per call than the tracker's default and does not stop on a layer the bound
# does not know (a user plugin); the other defaults are the tracker's (a test compares them).
# Runs set the keys below n_iter with +lipschitz.<key>=... before they were declared here.
LIPSCHITZ = Node(
    {
        "n_samples": Key(Int(1), 32, "fixed real/fake batch the gradient-norm lower bounds use"),
        "n_iter": Key(Int(1), 3, "power-iteration steps per layer and call (vectors persist)"),
        "n_iter_init": Key(Int(1), 50, "power-iteration steps of the first call", composed=False),
        "bound_mode": Key(
            Choice(("auto", "train", "eval")),
            "auto",
            "normalization gains: auto | train | eval",
            composed=False,
        ),
        "strict": Key(
            Bool(), False, "stop on a layer the bound does not know (false: warn)", composed=False
        ),
        "fd_step": Key(
            Float(gt=0), 1e-3, "finite-difference step of the gain estimates", composed=False
        ),
        "gain_samples": Key(
            Int(1), 8, "samples of the normalization-gain estimates", composed=False
        ),
    }
)

# the report reads it from the runs it reports on (gansn.report.build.study_config)
STUDY = Node(
    {
        "last_k": Key(Int(1), 3, "a run's final score: the mean of its last k evaluations"),
        "claims": Key(ClaimList(null=True), [], "claims the report tests over seeds"),
    },
    help="how the report scores this run (study presets fill it in)",
)

TRAIN = Node(
    {
        "seed": Key(Int(0), 0, "seeds models, latents and data order; runs are reproducible"),
        "steps": Key(Int(1), 1200, "generator updates (the x-axis of every plot)"),
        "steps_by_setting": Key(
            Dict(null=True), None, "{setting label: steps}: steps: ${steps_by_setting.${setting}}"
        ),
        "batch_size": Key(Int(1), 64, "real and fake samples per D update (all ranks together)"),
        "g_batch_size": Key(
            Int(1, null=True), None, "fake samples per G update (null: batch_size)"
        ),
        "n_dis": Key(Int(1), 1, "D updates per G update"),
        "update": Key(
            Choice(UPDATES), "alternating", "alternating (n_dis D steps, then G) | simultaneous"
        ),
        "setting": Key(Str(null=True), None, "label of the optimizer setting (the setting group)"),
        "device": Key(Device(), "auto", "auto (cuda if available), cpu, cuda or cuda:N"),
        "threads": Key(Int(0), 0, "torch CPU threads (0: OMP_NUM_THREADS, else a fair share)"),
        "flush_denormal": Key(
            Bool(), True, "CPU: treat denormal floats as 0 (a saturated D is 2-3x slower without)"
        ),
        "amp": Key(Choice(AMP), "off", "mixed precision of forward passes: off | bf16 | fp16"),
        "compile": Key(Bool(), False, "torch.compile G and D (falls back to eager with a warning)"),
        "channels_last": Key(Bool(), False, "NHWC memory format for image models and batches"),
        "distributed": Node(
            {
                "backend": Key(
                    Choice(BACKENDS),
                    "auto",
                    "auto (gloo for CPU tensors, + nccl for CUDA) | gloo | nccl",
                ),
                "sync_bn": Key(Bool(), False, "SyncBatchNorm across ranks (CUDA only)"),
            },
            help="used under torchrun (docs/distributed.md); ignored in one process",
        ),
        "num_workers": Key(Int(0), 0, "DataLoader workers for per-item datasets", composed=False),
        "resume": Key(Str(null=True), None, "run dir or checkpoint to continue from"),
        "imports": Key(StrList(null=True), [], "modules to import first (your own norms, archs)"),
        "report": Key(Bool(), False, "with -m: write <sweep dir>/report/ when the sweep ends"),
        "study": STUDY,
        "ema": Node(
            {
                "enabled": Key(Bool(), True, "keep an exponential moving average of G"),
                "decay": Key(
                    Float(ge=0, lt=1),
                    0.999,
                    "EMA decay; warmed up as min(decay, (1 + t) / (10 + t))",
                ),
                "start": Key(Int(0), 0, "first G step that updates the EMA (before: a copy of G)"),
            }
        ),
        "log_every": Key(Int(0), 25, "scalars to TensorBoard and metrics.jsonl every N G steps"),
        "sample_every": Key(
            Int(0), 200, "fixed-noise sample grid every N G steps (and at the end)"
        ),
        "ckpt_every": Key(Int(0), 200, "checkpoints/last.pt every N G steps (and at the end)"),
        "keep_every": Key(
            Int(0), 0, "also keep checkpoints/step_XXXXXX.pt every N G steps (0: never)"
        ),
        "lipschitz_every": Key(Int(0), 200, "Lipschitz estimates of D every N G steps (0: off)"),
        "lipschitz": LIPSCHITZ,
        "grid": Node(
            {
                "n": Key(Int(1), 64, "samples in the fixed-noise grid"),
                "nrow": Key(Int(1), 8, "images per grid row"),
            }
        ),
        "model": Node(
            {
                "name": Key(Str(), help="registry name (gansn.nn.ARCHS)"),
                "z_dim": Key(Int(1), help="latent dimension"),
                "width": Key(Float(gt=0), 1.0, "multiplies every channel count"),
                "options": Key(Dict(null=True), help="the architecture's keyword arguments"),
            },
            required=("name", "z_dim"),
        ),
        "g_norm": NORM,
        "d_norm": NORM,
        "dataset": DATASET,
        "loss": Node(
            {"name": Key(Str(), help="registry name"), "gp_weight": Key(Float(ge=0))}, open=True
        ),
        "optim": Node(
            {
                "g": OPTIMIZER,
                "d": OPTIMIZER,
                "lr_decay": Key(
                    Choice(("none", "linear")),
                    "none",
                    "none | linear (both learning rates decay linearly to 0 at steps)",
                ),
            },
            required=("g", "d"),
        ),
        "metrics": METRICS,
    },
)


def train_config_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Every problem of a training config: each key's rule, then the rules that tie keys
    together (absent keys read as their defaults)."""
    out = problems(cfg, TRAIN)
    if not isinstance(cfg, Mapping):
        return out
    full = complete(cfg)
    if full["update"] == "simultaneous":
        if full["n_dis"] != 1:
            out.append(
                "update=simultaneous takes one D and one G update per step: n_dis must be 1, "
                f"got {full['n_dis']!r}"
            )
        gb = full["g_batch_size"]
        if gb is not None and gb != full["batch_size"]:
            out.append(
                "update=simultaneous updates G on the fake batch D saw: g_batch_size must be "
                f"null or equal batch_size, got {gb!r}"
            )
    return out


def validate_train_config(cfg: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` for a training config no run can use (one line per problem)."""
    raise_problems(train_config_problems(cfg))
