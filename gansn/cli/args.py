"""Command lines of the small console scripts and of scripts/, checked before any work.

``key=value`` CLIs (sample, eval, lipschitz) take the same syntax as ``gansn-train`` but need
no config tree, so they parse it directly: values are read as YAML scalars/lists (``n=64``,
``ema=false``, ``metrics=[fid,kid]``) and checked against a :class:`gansn.schema.Key` per
option: its rule, default and help in one place, as for ``gansn-train``.  The argparse
scripts (gansn-report, scripts/*.py) use :class:`ArgumentParser`, whose errors are one
line, and :func:`typed` to give an option a type and range.  Either way a bad
command line is one line on stderr and exit code 2, before anything is read or written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import yaml

from gansn.errors import ConfigError, did_you_mean
from gansn.schema import REQUIRED, Node, Rule, problems, raise_problems, show

EXIT_BAD_INPUT = 2


def help_text(usage: str, options: Node) -> str:
    """``--help``: the usage as plain text (no reST markup) and every option with its help,
    its default and what it accepts, from the table that also checks and fills them."""
    lines = [usage.replace("``", "").rstrip(), "", "options (key=value):"]
    width = max(map(len, options.keys), default=0)
    for key, entry in options.keys.items():
        shown = "required" if entry.default == REQUIRED else f"default {show(entry.default)}"
        accepts = ("null or " if entry.rule.null else "") + entry.rule.describe()
        if entry.help:
            lines.append(f"  {key:<{width}}  {entry.help}")
        lines.append(f"  {'' if entry.help else key:<{width}}  {shown}; {accepts}")
    return "\n".join(lines)


def parse(argv: list[str], options: Node, usage: str) -> dict[str, Any]:
    """``["n=16", "ckpt=runs/x"]`` -> every option of ``options`` (a node of
    :class:`gansn.schema.Key`), given or its default; unknown, malformed, missing or
    out-of-range options raise ``ConfigError`` (one line per problem)."""
    if any(a in ("-h", "--help") for a in argv):
        print(help_text(usage, options))
        sys.exit(0)
    out = {key: entry.value() for key, entry in options.keys.items()}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(
                f"expected key=value, got {arg!r}; options: {', '.join(out)} (see --help)"
            )
        if key not in out:
            raise ConfigError(f"unknown option {key!r}{did_you_mean(key, out, 'valid')}")
        try:
            out[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError as err:
            why = getattr(err, "problem", None) or type(err).__name__
            raise ConfigError(f"{arg}: not a valid value ({why})") from None
    missing = [k for k, v in out.items() if v == REQUIRED]
    if missing:
        raise ConfigError(
            f"missing required option(s): {', '.join(f'{k}=...' for k in missing)} (see --help)"
        )
    raise_problems(problems(out, options), "bad option")
    return out


def run_cli(fn: Any, argv: list[str] | None = None) -> None:
    """Call ``fn(argv)`` turning ``ConfigError`` into one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fn(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


# --- argparse -----------------------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (``prog: error: ...; see --help``) and exit code 2.

    argparse prints the whole usage block before its error; for a script with many options
    that pushes the one line that matters off the screen.
    """

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def typed(rule: Rule, parse_value: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` that reads the text (YAML, or ``parse_value``) and checks ``rule``.

    argparse reports the failure as ``argument --steps: must be a positive integer, got -1``.
    """

    def convert(text: str) -> Any:
        try:
            value = parse_value(text) if parse_value else yaml.safe_load(text)
        except (yaml.YAMLError, ValueError) as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid value ({err})") from None
        line = rule.problem("", value)
        if line is not None:
            raise argparse.ArgumentTypeError(line.strip())
        return value

    convert.__name__ = type(rule).__name__.lower()  # argparse names the type in some errors
    return convert


def comma_list(item: Rule) -> Callable[[str], list[Any]]:
    """An argparse ``type=`` for ``a,b,c`` whose every item obeys ``item``."""

    def convert(text: str) -> list[Any]:
        values = [yaml.safe_load(s) for s in text.split(",") if s.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        for v in values:
            line = item.problem("each item", v)
            if line is not None:
                raise argparse.ArgumentTypeError(f"{text!r}: {line}")
        return values

    return convert


def run_script(main: Callable[[], Any], prog: str) -> NoReturn:
    """Run a script's ``main()``; a ``ConfigError`` (bad input found while working: a name,
    a file) is one line on stderr and exit code 2 instead of a traceback."""
    try:
        code = main()
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code or 0)
