"""``gansn-train``'s command line, checked before Hydra starts the app.

Hydra reports an unknown key, a missing config-group option or an unparsable override as a
multi-line message with exit code 1 (and a traceback with ``HYDRA_FULL_ERROR=1``), after it
has made the run dir.  :func:`check_command_line` composes the config the way the app will,
once per sweep value, and turns every such error -- and every value the trainer would refuse
(:func:`gansn.schema.train_config_problems`) -- into one line naming the key with the
closest valid names or the valid range.  :func:`hydra_error_line` does the same for errors
raised inside the app (a resume's composition).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gansn.config import compose, config_dir, to_plain
from gansn.errors import did_you_mean
from gansn.schema import train_config_problems, unknown_key_line, writable_dir_problem

# Hydra flags that take a value, and those that change nothing the check looks at
_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p")
_PLAIN_FLAGS = ("-m", "--multirun", "--resolve", "--run", "-r")
# one sweep's compositions are checked value by value; a bigger grid is left to the jobs
_MAX_COMPOSITIONS = 64


def split_argv(argv: list[str]) -> tuple[list[str], bool, bool] | None:
    """``(overrides, multirun, print_only)``; None when a flag asks Hydra for something
    else (``--info``, ``--config-dir``, ...), which is then left to Hydra as it is."""
    overrides: list[str] = []
    multirun = print_only = False
    args = iter(argv)
    for arg in args:
        if not arg.startswith("-"):
            overrides.append(arg)
            continue
        flag, eq, _ = arg.partition("=")
        if flag in _VALUE_FLAGS:
            print_only = print_only or flag in ("--cfg", "-c")
            if not eq:
                next(args, None)
        elif flag in ("-m", "--multirun"):
            multirun = True
        elif flag not in _PLAIN_FLAGS:
            return None
    return overrides, multirun, print_only


def check_command_line(argv: list[str]) -> str | None:
    """One line saying what is wrong with a ``gansn-train`` command line, or None."""
    split = split_argv(argv)
    if split is None:
        return None
    overrides, multirun, print_only = split
    if any(o.lstrip("+~").startswith("resume=") for o in overrides):
        # a resume composes on the saved run's own overrides: checked there (cli.train.run)
        return None if print_only else _output_dir_problem(overrides, multirun)
    # imported here: Hydra's parser is needed only for a command line to check
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    parsed = []
    for arg in overrides:  # one by one, so the line names the one that does not parse
        try:
            parsed += parser.parse_overrides([arg])
        except HydraException as err:
            lines = [ln for ln in _lines(str(err)) if not ln.startswith("Error parsing")]
            why = f" ({lines[0]})" if lines else ""
            return (
                f"cannot parse {arg!r}{why}: write key=value, a list as key=[a,b], a sweep as "
                "-m key=a,b (see --help)"
            )
    combos = _compositions(parsed) if multirun else [overrides]
    if combos is None:
        return None
    for combo in combos:
        try:
            cfg = compose(combo)
            plain = to_plain(cfg)
        except (HydraException, OmegaConfBaseException) as err:
            return hydra_error_line(err, combo)
        if print_only:
            continue
        problems = train_config_problems(plain)
        if len(problems) == 1:
            return f"invalid config: {problems[0]}"
        if problems:
            return f"invalid config ({len(problems)} problems):\n  - " + "\n  - ".join(problems)
    return _output_dir_problem(overrides, multirun)


def _compositions(parsed: list[Any]) -> list[list[str]] | None:
    """The sweep's jobs to check: its first point, then each sweep value once (the others
    at their first value), so every value is composed without the whole grid."""
    axes: list[list[str]] = []
    for o in parsed:
        if o.is_sweep_override():
            try:
                key = o.get_key_element()
                axes.append([f"{key}={v}" for v in o.sweep_string_iterator()])
            except Exception:  # an interval or a sweeper plugin's syntax: its own jobs check it
                return None
        else:
            axes.append([o.input_line])
    first = [axis[0] for axis in axes]
    combos = [first]
    for i, axis in enumerate(axes):
        combos += [[*first[:i], v, *first[i + 1 :]] for v in axis[1:]]
    return combos[:_MAX_COMPOSITIONS]


def _output_dir_problem(overrides: list[str], multirun: bool) -> str | None:
    """A literal ``hydra.run.dir``/``hydra.sweep.dir`` that cannot be a directory: Hydra
    would fail making it, with a traceback, before the app runs."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    for o in overrides:
        k, _, value = o.lstrip("+").partition("=")
        if k != key:
            continue
        value = value.strip().strip("'\"")
        if not value:  # Hydra would take the current directory, a checkout's root
            return (
                f"{o}: {key} is empty; give the run's own directory ({key}=runs/my_run), or "
                "leave it out for outputs/<date>/<time>"
            )
        if "${" not in value:
            return writable_dir_problem(key, Path(value).expanduser())
    return None


def hydra_error_line(err: BaseException, overrides: list[str]) -> str:
    """One line for a Hydra/OmegaConf composition error, naming the closest valid names."""
    from hydra.errors import MissingConfigException

    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, option = str(err.missing_cfg_file).rpartition("/")
        arg = next((o for o in overrides if o.endswith(f"={option}")), f"{group}={option}")
        return f"{arg}: {group} has no option {option!r}" + did_you_mean(
            option, err.options, f"{group} options"
        )
    key = getattr(err.__cause__, "full_key", None) or getattr(err, "full_key", None)
    text = str(err)
    if key and ("Could not override" in text or "not in struct" in text):
        return _unknown_key_line(str(key), overrides)
    missing = re.search(r"Interpolation key '([^']+)' not found", text)
    if key and missing:  # e.g. a study preset's steps: ${steps_by_setting.${setting}}
        need = missing.group(1)
        return (
            f"{key}: {need} is not set ({key} is interpolated from it); "
            f"add +{need}=<value> or set {key}=<value>"
        )
    if key:  # an OmegaConf error (a broken interpolation): its first line, for that key
        return f"{key}: {_lines(text)[0]}"
    if "Ambiguous value for argument" in text:
        arg = text.split("'")[1] if text.count("'") >= 2 else text
        return (
            f"{arg}: a comma-separated value is a sweep: add -m (--multirun), or write a list "
            "as key=[a,b] or a string as key='a,b'"
        )
    return "; ".join(_lines(text))


def _lines(text: str) -> list[str]:
    """A Hydra message's lines, without its search-path dump and documentation links."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Config search path") or line.startswith("Set the environment"):
            break
        if line and not line.startswith("See https://"):
            out.append(line.rstrip("."))
    return out


def _unknown_key_line(key: str, overrides: list[str]) -> str:
    """``unknown key dataset.nn; did you mean dataset.n?`` (or the node's keys)."""
    arg = next((o for o in overrides if o.lstrip("+~").split("=")[0] == key), key)
    parent, _, leaf = key.rpartition(".")
    node = _node(parent, [o for o in overrides if o != arg])
    if node is None:
        return f"{arg}: unknown key {key}"
    if not hasattr(node, "keys"):
        return f"{arg}: {parent} is a value, not a config group: unknown key {key}"
    # the hydra node is composed in to find hydra.* keys, but is no key of the config
    keys = [k for k in node if parent or str(k) != "hydra"]
    return f"{arg}: {unknown_key_line(key, leaf, f'{parent}.' if parent else '', keys)}"


def _node(path: str, overrides: list[str]) -> Any:
    """The config node at ``path`` composed with ``overrides`` (hydra node included)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def walk(cfg: Any) -> Any:
        for part in path.split(".") if path else []:
            if not hasattr(cfg, "keys") or part not in cfg:
                return None
            cfg = cfg[part]
        return cfg

    for attempt in (overrides, []):
        try:
            if GlobalHydra.instance().is_initialized():
                return walk(hydra_compose("train", attempt, return_hydra_config=True))
            with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
                return walk(hydra_compose("train", attempt, return_hydra_config=True))
        except Exception:  # the other overrides are broken too: fall back to the defaults
            continue
    return None
