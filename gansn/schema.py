"""Types and ranges of every config key and command-line option, checked before any work.

A rule per key (:class:`Int`, :class:`Float`, :class:`Choice`, ...) and a :class:`Node` per
config group.  :func:`problems` walks a config against a node and returns one line per
problem, each naming the key and what it must be (``steps must be a positive integer, got
-1``); an unknown key gets the closest valid names.  ``gansn-train`` checks the composed
config against :data:`TRAIN` before Hydra makes a run dir, the trainer checks it again (the
Python API), and the small CLIs check their ``key=value`` options with the same rules.

No torch, Hydra or registry imports here: the command line is refused before they load.
Nodes marked ``open`` take options this table does not list (a registered norm's, dataset's,
loss's or optimizer's keyword arguments); their builders refuse unknown ones against the
entry's signature (:func:`gansn.registry.check_options`).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gansn.errors import ConfigError, close_matches, did_you_mean


def _is_int(v: Any) -> bool:
    # YAML's true/false are ints to Python; `steps=true` is a mistake, not 1
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


class Rule:
    """What one value must be; ``problem`` -> one line, or None when the value is fine."""

    null: bool = False

    def describe(self) -> str:
        raise NotImplementedError

    def ok(self, v: Any) -> bool:
        raise NotImplementedError

    def problem(self, key: str, v: Any) -> str | None:
        if v is None and self.null:
            return None
        if self.ok(v):
            return None
        what = self.describe()
        return f"{key} must be {'null or ' + what if self.null else what}, got {v!r}"


@dataclass(frozen=True)
class Int(Rule):
    min: int | None = None
    max: int | None = None
    null: bool = False
    words: tuple[str, ...] = ()  # literal words accepted too (e.g. "run": the run's own)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            what = f"an integer in [{self.min}, {self.max}]"
        elif self.min == 1:
            what = "a positive integer"
        elif self.min is not None:
            what = f"an integer >= {self.min}"
        else:
            what = "an integer"
        return " or ".join([what, *(repr(w) for w in self.words)])

    def ok(self, v: Any) -> bool:
        if isinstance(v, str) and v in self.words:
            return True
        return (
            _is_int(v)
            and (self.min is None or v >= self.min)
            and (self.max is None or v <= self.max)
        )


@dataclass(frozen=True)
class Float(Rule):
    """A finite number (ints too) within the given bounds."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    null: bool = False

    def describe(self) -> str:
        lo = "(" if self.gt is not None else "["
        lo_v = self.gt if self.gt is not None else self.ge
        hi = ")" if self.lt is not None else "]"
        hi_v = self.lt if self.lt is not None else self.le
        if lo_v is not None and hi_v is not None:
            return f"a number in {lo}{lo_v:g}, {hi_v:g}{hi}"
        if self.gt == 0:
            return "a positive number"
        if lo_v is not None:
            return f"a number {'>' if self.gt is not None else '>='} {lo_v:g}"
        if hi_v is not None:
            return f"a number {'<' if self.lt is not None else '<='} {hi_v:g}"
        return "a finite number"

    def ok(self, v: Any) -> bool:
        return (
            _is_number(v)
            and math.isfinite(v)
            and (self.gt is None or v > self.gt)
            and (self.ge is None or v >= self.ge)
            and (self.lt is None or v < self.lt)
            and (self.le is None or v <= self.le)
        )


@dataclass(frozen=True)
class Bool(Rule):
    null: bool = False

    def describe(self) -> str:
        return "true or false"

    def ok(self, v: Any) -> bool:
        return isinstance(v, bool)


@dataclass(frozen=True)
class Str(Rule):
    null: bool = False

    def describe(self) -> str:
        return "a string"

    def ok(self, v: Any) -> bool:
        return isinstance(v, str) and v != ""


@dataclass(frozen=True)
class Choice(Rule):
    values: tuple[Any, ...] = ()
    null: bool = False

    def describe(self) -> str:
        return f"one of {', '.join(map(str, self.values))}"

    def ok(self, v: Any) -> bool:
        return not isinstance(v, list | dict) and v in self.values

    def problem(self, key: str, v: Any) -> str | None:
        line = super().problem(key, v)
        if line is None or not isinstance(v, str) or not close_matches(v, map(str, self.values)):
            return line
        return line + did_you_mean(v, map(str, self.values))


@dataclass(frozen=True)
class Device(Rule):
    null: bool = False

    def describe(self) -> str:
        return "auto, cpu, cuda, cuda:N or mps"

    def ok(self, v: Any) -> bool:
        return isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None


@dataclass(frozen=True)
class Betas(Rule):
    null: bool = False

    def describe(self) -> str:
        return "two numbers in [0, 1)"

    def ok(self, v: Any) -> bool:
        return (
            isinstance(v, list | tuple)
            and len(v) == 2
            and all(_is_number(b) and 0 <= b < 1 for b in v)
        )


@dataclass(frozen=True)
class StrList(Rule):
    null: bool = False

    def describe(self) -> str:
        return "a list of strings ([a,b])"

    def ok(self, v: Any) -> bool:
        return isinstance(v, list | tuple) and all(isinstance(s, str) for s in v)


@dataclass(frozen=True)
class MetricList(Rule):
    """Metric names, or ``{name: ..., <option>: ...}`` nodes (a bare name is one metric)."""

    null: bool = False

    def describe(self) -> str:
        return "a metric name or a list of them ([fid,kid])"

    def ok(self, v: Any) -> bool:
        items = v if isinstance(v, list | tuple) else [v]
        return all(
            (isinstance(m, str) and m)
            or (isinstance(m, Mapping) and isinstance(m.get("name"), str))
            for m in items
        )


@dataclass(frozen=True)
class ClaimList(Rule):
    """A study's claims: mappings with id, subject, rivals and metrics (the report parses
    them fully, :func:`gansn.report.verdicts.parse_claims`)."""

    null: bool = False

    def describe(self) -> str:
        return "a list of claims ({id, subject, rivals, metrics[, text, where, score]})"

    def ok(self, v: Any) -> bool:
        need = {"id", "subject", "rivals", "metrics"}
        return isinstance(v, list | tuple) and all(
            isinstance(c, Mapping) and need <= set(c) for c in v
        )


@dataclass(frozen=True)
class Dict(Rule):
    null: bool = False

    def describe(self) -> str:
        return "a mapping ({key: value})"

    def ok(self, v: Any) -> bool:
        return isinstance(v, Mapping)


@dataclass(frozen=True)
class OutFile(Rule):
    """A path to write, with one of ``suffixes``; its folder must be creatable and writable."""

    suffixes: tuple[str, ...] = ()
    null: bool = False

    def describe(self) -> str:
        return f"a {' or '.join(self.suffixes)} file path"

    def ok(self, v: Any) -> bool:
        return isinstance(v, str) and v != "" and Path(v).suffix.lower() in self.suffixes

    def problem(self, key: str, v: Any) -> str | None:
        line = super().problem(key, v)
        if line is not None or v is None:
            return line
        return writable_file_problem(key, Path(v).expanduser())


# the longest file name (one path component) nearly every file system takes, in bytes
NAME_MAX = 255


def writable_file_problem(key: str, path: Path) -> str | None:
    """Why ``path`` cannot be written as a file (None if it can), found before writing."""
    label = f"{key}={path}" if key else str(path)
    if (line := _name_problem(label, path, "path")) is not None:
        return line
    if path.is_dir():
        return f"{label} is a directory; give a file path"
    probe = path.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"{label}: {probe} exists and is not a directory; choose another path"
    return _write_problem(label, probe, "path")


def writable_dir_problem(key: str, path: Path) -> str | None:
    """Why ``path`` cannot be made or written as a directory (None if it can)."""
    label = f"{key}={path}"
    if (line := _name_problem(label, path, key)) is not None:
        return line
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"{label}: {probe} exists and is not a directory; choose another {key}"
    return _write_problem(label, probe, key)


def _name_problem(label: str, path: Path, what: str) -> str | None:
    """A path no file system can hold: a name longer than ``NAME_MAX`` bytes (the OS says
    only "File name too long", from deep inside the first call that touches it)."""
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return (
                f"{label[:60]}...: the name {part[:20]}... is {size} bytes long, and a file or "
                f"folder name may have at most {NAME_MAX}; choose another {what}"
            )
    return None


def _write_problem(label: str, folder: Path, what: str) -> str | None:
    """Whether new entries can be made in the existing ``folder``: its permissions, then a
    real try (a folder made and removed at once), since root passes every permission check
    and pseudo file systems (/proc, /sys) refuse what their modes allow."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{label}: {folder} is not writable; choose another {what}"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".gansn-probe-", dir=folder))
    except OSError as err:
        why = err.strerror or type(err).__name__
        return f"{label}: nothing can be created in {folder} ({why}); choose another {what}"
    return None


@dataclass(frozen=True)
class Node:
    """A config group: a rule or node per key.

    open: unknown keys are passed on (a registry entry's options, checked where it is
    built); required: keys that must be present.
    """

    keys: Mapping[str, Rule | Node] = field(default_factory=dict)
    open: bool = False
    required: tuple[str, ...] = ()


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
            rule = node.keys.get(key)
            what = rule.describe() if isinstance(rule, Rule) else "a config group"
            out.append(f"{prefix}{key} is missing; it must be {what}")
    for key, value in cfg.items():
        rule = node.keys.get(key)
        path = f"{prefix}{key}"
        if rule is None:
            if not node.open:
                out.append(unknown_key_line(path, key, prefix, node.keys))
        elif isinstance(rule, Node):
            if value is not None or rule.required:
                out += problems(value, rule, f"{path}.")
        elif (line := rule.problem(path, value)) is not None:
            out.append(line)
    return out


def check(cfg: Any, node: Node, what: str = "invalid config") -> None:
    """Raise ``ConfigError`` with one line per problem (one line in all for one problem)."""
    raise_problems(problems(cfg, node), what)


def raise_problems(lines: list[str], what: str = "invalid config") -> None:
    if len(lines) == 1:
        raise ConfigError(f"{what}: {lines[0]}")
    if lines:
        raise ConfigError(f"{what} ({len(lines)} problems):\n  - " + "\n  - ".join(lines))


# --- gansn-train's config (conf/train.yaml and its groups) ------------------------------------

UPDATES = ("alternating", "simultaneous")
AMP = ("off", "bf16", "fp16")
BACKENDS = ("auto", "gloo", "nccl")

NORM = Node(
    {
        "name": Str(),
        "eps": Float(gt=0),
        "momentum": Float(ge=0, le=1, null=True),  # null: BN's cumulative average
        "n_power_iterations": Int(1),
        "num_groups": Int(1),
        "affine": Bool(),
    },
    open=True,
)

DATASET = Node(
    {
        "name": Str(),
        "root": Str(null=True),
        "split": Str(null=True),
        "n": Int(1, null=True),
        "img_size": Int(1),
        "channels": Int(1, null=True),
        "num_classes": Int(1),
        "seed": Int(0),
        "modes": Int(1),
        "side": Int(1),
        "radius": Float(gt=0),
        "spacing": Float(gt=0),
        "std": Float(ge=0),
        "download": Bool(),
        "stacked": Bool(),
        "labels": Bool(),
        "balanced": Bool(),
        "resize": Choice(("resize", "pad")),
        "interpolation": Str(),
        "extensions": StrList(null=True),
    },
    open=True,
)

OPTIMIZER = Node(
    {
        "_target_": Str(),
        "_partial_": Bool(),
        "lr": Float(gt=0),
        "betas": Betas(),
        "eps": Float(gt=0),
        "weight_decay": Float(ge=0),
        "momentum": Float(ge=0),
    },
    open=True,  # any keyword of the torch.optim class (build_optimizer checks its signature)
    required=("lr",),
)

METRICS = Node(
    {
        "eval_every": Int(0),
        "list": MetricList(null=True),
        "best": Str(null=True),
        "features": Str(),
        "num_real": Int(1, null=True),
        "num_fake": Int(1),
        "batch_size": Int(1),
        "bn_updates": Int(0),  # EvalHook's: batch-norm re-estimation batches before evaluating
        "real_split": Choice(("train", "test")),
        "options": Dict(null=True),  # the extractor's options, checked when it is built
        "inception_weights": Str(null=True),
        "download": Bool(),
        "cache_dir": Str(null=True),
    }
)

TRAIN = Node(
    {
        "seed": Int(0),
        "steps": Int(1),
        "steps_by_setting": Dict(null=True),  # used as steps: ${steps_by_setting.${setting}}
        "batch_size": Int(1),
        "g_batch_size": Int(1, null=True),
        "n_dis": Int(1),
        "update": Choice(UPDATES),
        "setting": Str(null=True),
        "device": Device(),
        "threads": Int(0),
        "flush_denormal": Bool(),
        "amp": Choice(AMP),
        "compile": Bool(),
        "channels_last": Bool(),
        "distributed": Node({"backend": Choice(BACKENDS), "sync_bn": Bool()}),
        "num_workers": Int(0),  # DataLoader workers for per-item datasets (not in train.yaml)
        "resume": Str(null=True),
        "imports": StrList(null=True),
        "report": Bool(),
        "study": Node({"last_k": Int(1), "claims": ClaimList(null=True)}),
        "ema": Node({"enabled": Bool(), "decay": Float(ge=0, lt=1), "start": Int(0)}),
        "log_every": Int(0),
        "sample_every": Int(0),
        "ckpt_every": Int(0),
        "keep_every": Int(0),
        "lipschitz_every": Int(0),
        # n_samples is the hook's; the rest are LipschitzTracker's keyword arguments
        "lipschitz": Node(
            {
                "n_samples": Int(1),
                "n_iter": Int(1),
                "n_iter_init": Int(1),
                "bound_mode": Choice(("auto", "train", "eval")),
                "strict": Bool(),
                "fd_step": Float(gt=0),
                "gain_samples": Int(1),
            }
        ),
        "grid": Node({"n": Int(1), "nrow": Int(1)}),
        "model": Node(
            {
                "name": Str(),
                "z_dim": Int(1),
                "width": Float(gt=0),
                "options": Dict(null=True),  # the architecture's, checked when it is built
            },
            required=("name", "z_dim"),
        ),
        "g_norm": NORM,
        "d_norm": NORM,
        "dataset": DATASET,
        "loss": Node({"name": Str(), "gp_weight": Float(ge=0)}, open=True),
        "optim": Node(
            {"g": OPTIMIZER, "d": OPTIMIZER, "lr_decay": Choice(("none", "linear"))},
            required=("g", "d"),
        ),
        "metrics": METRICS,
    },
    required=("steps", "batch_size", "n_dis"),
)


def train_config_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Every problem of a composed training config: each key's rule, then the rules that
    tie keys together."""
    out = problems(cfg, TRAIN)
    if not isinstance(cfg, Mapping):
        return out
    update = cfg.get("update", "alternating")
    if update == "simultaneous":
        if cfg.get("n_dis") != 1:
            out.append(
                "update=simultaneous takes one D and one G update per step: n_dis must be 1, "
                f"got {cfg.get('n_dis')!r}"
            )
        gb = cfg.get("g_batch_size")
        if gb is not None and gb != cfg.get("batch_size"):
            out.append(
                "update=simultaneous updates G on the fake batch D saw: g_batch_size must be "
                f"null or equal batch_size, got {gb!r}"
            )
    return out


def validate_train_config(cfg: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` for a training config no run can use (one line per problem)."""
    raise_problems(train_config_problems(cfg))
