"""What one config value or command-line option must be: a :class:`Rule` per kind of value.

Each rule says in words what it accepts (:meth:`Rule.describe`, used by ``--help`` and by
error lines) and turns a bad value into one line naming the key (``steps must be a positive
integer, got -1``).  :mod:`gansn.schema` pairs a rule with a key's default and help.

No torch, Hydra or registry imports here: the command line is refused before they load.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gansn.errors import close_matches, did_you_mean


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
    them fully, :func:`gansn.study.verdicts.parse_claims`)."""

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
