"""The checkpoint format: one versioned dict per save, written atomically, read
weights-only; and G/D rebuilt from a checkpoint without Hydra or the run dir.

Everything that reads or writes checkpoints (training, sampling, ``gansn-eval``,
``gansn-lipschitz``, the report) goes through this module, one floor below all of them.

Layout (``FORMAT`` 1)::

    {"format": 1, "step": int, "spec": ModelSpec dict, "config": resolved config dict,
     "overrides": [str], "models": {"G": sd, "D": sd, "G_ema": sd?}, "ema": {...}?,
     "optim": {"G": sd, "D": sd}, "sched": {"G": sd, "D": sd}, "rng": {...},
     "data": {...}, "fixed_noise": (n, z_dim), "best": {...}, "extra": {...}}

Only tensors, numbers, strings and plain containers, so ``torch.load(weights_only=True)``
reads it -- no pickled classes, no code execution on load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gansn.errors import ConfigError
from gansn.nn.archs import ModelSpec, build_discriminator, build_generator
from gansn.utils import atomic_torch_save

log = logging.getLogger(__name__)

FORMAT = 1
LAST = "last.pt"
BEST = "best.pt"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def find_checkpoint(path: str | Path, name: str = LAST) -> Path:
    """A checkpoint file, or ``<run dir>/checkpoints/<name>`` for a run dir."""
    p = Path(path).expanduser()
    if p.is_dir():
        candidate = checkpoint_dir(p) / name
        if not candidate.is_file():
            raise ConfigError(
                f"no checkpoint at {candidate}: {p} is not a gansn run dir with a saved "
                "checkpoint (pass the .pt file itself, or a run dir that has checkpoints/)"
            )
        return candidate
    if not p.is_file():
        raise ConfigError(f"checkpoint {p} does not exist")
    return p


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` (plus the format tag) atomically to ``path``."""
    return atomic_torch_save({"format": FORMAT, **state}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (file or run dir) with ``weights_only=True`` and check its format."""
    file = find_checkpoint(path)
    try:
        ckpt = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ConfigError(f"cannot read checkpoint {file}: {err}") from None
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise ConfigError(f"{file} is not a gansn checkpoint (no 'format' key)")
    if ckpt["format"] > FORMAT:
        raise ConfigError(
            f"{file} has checkpoint format {ckpt['format']}, newer than this gansn "
            f"understands ({FORMAT}); upgrade gansn"
        )
    ckpt["path"] = str(file)
    return ckpt


def load_models(
    path: str | Path, *, ema: bool = False, map_location: str = "cpu"
) -> tuple[nn.Module, nn.Module, ModelSpec]:
    """Rebuild ``(G, D, spec)`` from a checkpoint file or run dir, both in eval mode.

    With ``ema=True`` G is the EMA generator (falls back to the raw G with a warning when the
    run kept no EMA).
    """
    ckpt = load_checkpoint(path, map_location)
    spec = ModelSpec.from_dict(ckpt["spec"])
    G, D = build_generator(spec), build_discriminator(spec)
    G.load_state_dict(_generator_state(ckpt, ema))
    D.load_state_dict(ckpt["models"]["D"])
    return G.eval(), D.eval(), spec


def load_generator(
    path: str | Path, *, ema: bool = True, map_location: str = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Rebuild G (EMA by default) from a checkpoint file or run dir, in eval mode."""
    ckpt = load_checkpoint(path, map_location)
    spec = ModelSpec.from_dict(ckpt["spec"])
    G = build_generator(spec)
    G.load_state_dict(_generator_state(ckpt, ema))
    return G.eval(), spec


def _generator_state(ckpt: dict[str, Any], ema: bool) -> dict[str, Any]:
    models = ckpt["models"]
    if ema and "G_ema" not in models:
        log.warning("%s has no EMA generator; using the raw G", ckpt.get("path"))
    return models["G_ema"] if ema and "G_ema" in models else models["G"]
