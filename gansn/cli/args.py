"""``key=value`` command lines for the small console scripts (sample, eval, lipschitz).

They take the same ``key=value`` syntax as ``gansn-train`` but need no config tree, so they
parse it directly: values are read as YAML scalars/lists (``n=64``, ``ema=false``,
``metrics=[fid,kid]``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import yaml

from gansn.errors import ConfigError


def parse(argv: list[str], defaults: dict[str, Any], usage: str) -> dict[str, Any]:
    """``["n=16", "ckpt=runs/x"]`` -> defaults updated; unknown or malformed keys fail."""
    if any(a in ("-h", "--help") for a in argv):
        print(usage)
        sys.exit(0)
    out = dict(defaults)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"expected key=value, got {arg!r}\n{usage}")
        if key not in defaults:
            raise ConfigError(f"unknown option {key!r}; valid: {', '.join(sorted(defaults))}")
        out[key] = yaml.safe_load(value) if value else None
    missing = [k for k, v in out.items() if v == "???"]
    if missing:
        raise ConfigError(f"missing required option(s): {', '.join(missing)}\n{usage}")
    return out


def run_cli(fn: Any, argv: list[str] | None = None) -> None:
    """Call ``fn(argv)`` turning ``ConfigError`` into one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        fn(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
