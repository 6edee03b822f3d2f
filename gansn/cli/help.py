"""``gansn-train --help``: gansn's config groups with their options (read from the shipped
conf/) and every key with its default and help (from :data:`gansn.schema.TRAIN`, where the
checks and the composed defaults come from), so the text never drifts from either."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gansn.config import config_dir
from gansn.schema import ABSENT, TRAIN, entries, show

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


def documented_keys() -> list[tuple[str, str, str]]:
    """``(key, default, help)`` of every key with a default (``ema.decay`` for nested ones),
    in :data:`gansn.schema.TRAIN`'s order: the one table the checks and defaults come from."""
    return [
        (key, show(entry.default), entry.help)
        for key, entry in entries(TRAIN)
        if entry.default is not ABSENT
    ]


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
    lines += ["", "keys (key=default; a group's option or a preset may change them):"]
    for key, value, doc in documented_keys():
        shown = f"{key}={value}"
        if len(shown) > 28:  # a long default (cache_dir's) gets a line of its own
            lines += [f"  {shown}", f"  {'':<28} {doc}"]
        else:
            lines.append(f"  {shown:<28} {doc}")
    lines += [
        "",
        "e.g. gansn-train experiment=quickstart norm@d_norm=layer steps=3000",
        "     gansn-train -m experiment=norm_study_pacgan",
        "Hydra's own help: gansn-train --hydra-help",
    ]
    return "\n".join(lines)
