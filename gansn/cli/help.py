"""``gansn-train --help``: gansn's config groups with their options and the top-level keys
with their comments, read from the shipped conf/ so the text never drifts from the configs."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from gansn.config import config_dir

# a YAML line "key: value  # comment", at the top level or one level in
_KEY_LINE = re.compile(
    r"^(?P<indent> {0,2})(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*)(#\s*(?P<doc>.*))?$"
)
# groups mounted under another name in train.yaml's defaults list
_MOUNTS = {"norm": "norm@g_norm, norm@d_norm"}


def config_groups(root: Path | None = None) -> dict[str, list[str]]:
    """``{group: [option, ...]}`` of conf/ (hydra/ excluded), both sorted."""
    root = root or config_dir()
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(root.iterdir())
        if d.is_dir() and d.name != "hydra"
    }


def documented_keys(root: Path | None = None) -> list[tuple[str, str, str]]:
    """``(key, default, comment)`` of train.yaml's keys (``ema.decay`` for nested ones),
    in file order; the ``defaults`` list and the ``hydra`` node are left out."""
    root = root or config_dir()
    out: list[tuple[str, str, str]] = []
    parent = None
    for line in (root / "train.yaml").read_text().splitlines():
        m = _KEY_LINE.match(line)
        if not m:
            continue
        key, value = m["key"], m["value"].strip()
        if not m["indent"]:
            parent = key if not value else None
            if key in ("defaults", "hydra"):
                parent = "-skip-"
                continue
            if value:  # a parent node (ema:, grid:) is listed through its keys
                out.append((key, value, (m["doc"] or "").strip()))
        elif parent and parent != "-skip-":
            out.append((f"{parent}.{key}", value, (m["doc"] or "").strip()))
    return out


def help_text() -> str:
    lines = [
        "gansn-train: train a GAN (a Hydra app; the run dir holds checkpoints, TensorBoard "
        "events, samples, metrics).",
        "",
        "usage: gansn-train [group=option ...] [key=value ...]       one run",
        "       gansn-train -m group=a,b seed=0,1 ...                  a sweep (-m: multirun)",
        "       gansn-train ... --cfg job                              print the composed config",
        "",
        "config groups (group=option):",
    ]
    for group, options in config_groups().items():
        wrapped = textwrap.wrap(", ".join(options), 70)
        lines.append(f"  {_MOUNTS.get(group, group):<28} {wrapped[0]}")
        lines += [f"  {'':<28} {rest}" for rest in wrapped[1:]]
    lines += ["", "keys (key=value; defaults from conf/train.yaml, a preset may change them):"]
    for key, value, doc in documented_keys():
        shown = f"{key}={value}" if value else key
        lines.append(f"  {shown:<28} {doc}")
    lines += [
        "",
        "e.g. gansn-train experiment=quickstart norm@d_norm=layer steps=3000",
        "     gansn-train -m experiment=norm_study_pacgan",
        "Hydra's own help: gansn-train --hydra-help",
    ]
    return "\n".join(lines)
