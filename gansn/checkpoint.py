"""The checkpoint format: one versioned dict per save, written atomically, read
weights-only; and G/D rebuilt from a checkpoint without Hydra or the run dir.

Everything that reads or writes checkpoints (training, sampling, ``gansn-eval``,
``gansn-lipschitz``, the report) goes through this module, one floor below all of them.

Layout (``FORMAT`` 1)::

    {"format": 1, "step": int, "spec": ModelSpec dict, "config": resolved config dict,
     "overrides": [str], "models": {"G": sd, "D": sd, "G_ema": sd?}, "ema": {...}?,
     "optim": {"G": sd, "D": sd}, "sched": {"G": sd, "D": sd}, "rng": {...},
     "data": {...}, "fixed_noise": (n, z_dim), "best": {...}, "extra": {...},
     "scaler": {"G": sd, "D": sd}?}  (GradScalers, amp=fp16 only)

Models are saved as the plain modules, never as their DDP (``module.``) or torch.compile
(``_orig_mod.``) wrappers, so a checkpoint loads in any mode.

Only tensors, numbers, strings and plain containers, so ``torch.load(weights_only=True)``
reads it -- no pickled classes, no code execution on load.
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
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


# what every format-1 reader needs, and what resuming needs on top (older checkpoints may
# lack "best", "elapsed" and "hooks": readers default them)
REQUIRED = {"step": int, "spec": dict, "models": dict}
REQUIRED_TO_RESUME = {
    "optim": dict,
    "sched": dict,
    "rng": dict,
    "data": dict,
    "fixed_noise": torch.Tensor,
}
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6, the only one gansn writes


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, resume: bool = False
) -> dict[str, Any]:
    """Load a checkpoint (file or run dir) with ``weights_only=True`` and validate it.

    Every way the file can be wrong (not a torch file, pickled code, no or an unknown
    ``format``, missing or ill-typed keys; with ``resume=True`` also what resuming needs) is
    a :class:`ConfigError` of one line naming the file.
    """
    file = find_checkpoint(path)
    ckpt = _read(file, map_location)
    validate_checkpoint(ckpt, file, resume=resume)
    ckpt["path"] = str(file)
    return ckpt


def _read(file: Path, map_location: str | torch.device) -> Any:
    try:
        with open(file, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise ConfigError(f"cannot read checkpoint {file}: {err.strerror or err}") from None
    if not head:
        raise ConfigError(f"{file} is empty (0 bytes), not a gansn checkpoint")
    if head != _ZIP_MAGIC:
        raise ConfigError(
            f"{file} is not a gansn checkpoint: not a torch.save file (it starts with {head!r})"
        )
    _check_crc(file)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols on its way to refusing a foreign pickle;
            # the refusal below says what matters
            warnings.simplefilter("ignore")
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's text advises weights_only=False, i.e. running the file's code: never that
        code = re.search(r"GLOBAL ([\w.]+)", str(err))
        if code:
            raise ConfigError(
                f"{file} is refused: its pickle would import and run code ({code.group(1)}), "
                "which a gansn checkpoint never holds; it was not written by gansn or was "
                "altered, so do not load it"
            ) from None
        raise ConfigError(
            f"{file} is not a gansn checkpoint: its pickle holds more than tensors and plain "
            f"containers ({_unpickling_detail(str(err))})"
        ) from None
    except Exception as err:
        # the first sentence: torch's zip errors go on with several lines of advice
        detail = str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else ""
        detail = detail or "no details"
        raise ConfigError(
            f"cannot read checkpoint {file}: it is truncated or corrupt "
            f"({type(err).__name__}: {detail})"
        ) from None


def _check_crc(file: Path) -> None:
    """Refuse a checkpoint whose bytes changed after it was written (a flipped bit on disk,
    an edit): torch.save stores each record's CRC-32 in the zip, but torch.load does not
    check it (its miniz is built without reader CRC checks), so a damaged tensor would load
    as wrong weights. Reading the file once costs ~1 ms per MB."""
    try:
        with zipfile.ZipFile(file) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return  # not a readable zip at all: torch.load's own error (truncated, ...) follows
    if bad is not None:
        raise ConfigError(
            f"{file} is corrupt: its record {bad!r} does not match the CRC-32 written with it "
            "(the file changed on disk after gansn saved it); use another checkpoint "
            "(best.pt, a step_*.pt) or retrain"
        )


def _unpickling_detail(message: str) -> str:
    """The one line of torch's unpickling error that names the problem, without its advice."""
    for line in message.splitlines():
        line = line.replace("WeightsUnpickler error:", "").strip()
        if line and not re.search(r"weights.only|please file|documentation", line, re.I):
            return line.rstrip(".")
    return "unsupported pickle content"


def validate_checkpoint(ckpt: Any, file: str | Path, *, resume: bool = False) -> None:
    """Raise a one-line :class:`ConfigError` unless ``ckpt`` is a readable gansn checkpoint."""
    if not isinstance(ckpt, dict):
        raise ConfigError(
            f"{file} is not a gansn checkpoint: it holds a value of type "
            f"{type(ckpt).__name__}, not a dict with a 'format' key"
        )
    if "format" not in ckpt:
        raise ConfigError(f"{file} is not a gansn checkpoint (no 'format' key)")
    fmt = ckpt["format"]
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise ConfigError(
            f"{file}: 'format' is {fmt!r} ({type(fmt).__name__}), not an integer version; "
            "the file is not a gansn checkpoint or was altered"
        )
    if fmt > FORMAT:
        raise ConfigError(
            f"{file} has checkpoint format {fmt}, newer than this gansn understands "
            f"({FORMAT}); upgrade gansn"
        )
    if fmt < 1:
        raise ConfigError(
            f"{file} has checkpoint format {fmt}, which no gansn wrote (this one reads "
            f"{'1' if FORMAT == 1 else f'1 to {FORMAT}'})"
        )
    required = {**REQUIRED, **(REQUIRED_TO_RESUME if resume else {})}
    missing = [k for k in required if k not in ckpt]
    if missing:
        need = "to resume" if resume and not set(missing) & set(REQUIRED) else f"in format {fmt}"
        raise ConfigError(
            f"{file} is incomplete: it lacks {', '.join(map(repr, missing))}, required {need}"
        )
    wrong = [
        f"{k!r} is of type {type(ckpt[k]).__name__}, expected {t.__name__}"
        for k, t in required.items()
        if not isinstance(ckpt[k], t) or isinstance(ckpt[k], bool)
    ]
    step = ckpt["step"]
    if not wrong and step < 0:
        wrong.append(f"'step' is {step}")
    models = ckpt["models"]
    if not wrong:
        wrong += [
            f"'models' lacks a {k!r} state dict"
            for k in ("G", "D")
            if not isinstance(models.get(k), dict)
        ]
    if not wrong:
        try:
            ModelSpec.from_dict(ckpt["spec"])
        except KeyError as err:
            wrong.append(f"'spec' is not a model spec (it lacks {err.args[0]!r})")
        except (TypeError, ValueError) as err:
            wrong.append(f"'spec' is not a model spec ({err})")
    if resume and not wrong and "fixed_noise" in ckpt:
        noise, z_dim = ckpt["fixed_noise"], ckpt["spec"].get("z_dim")
        if not isinstance(noise, torch.Tensor) or noise.ndim != 2 or noise.shape[1] != z_dim:
            shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            wrong.append(f"'fixed_noise' is {shape}, not (n, z_dim={z_dim})")
    if wrong:
        raise ConfigError(f"{file} is damaged: {'; '.join(wrong)}")


WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrapped_key(key: str) -> str:
    """``module._orig_mod.net.0.weight`` -> ``net.0.weight``: a state-dict key without the
    prefixes DDP and torch.compile add."""
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def load_module_state(
    module: nn.Module, state: dict[str, Any], what: str, file: str | Path | None
) -> None:
    """``module.load_state_dict(state)``, with a mismatch reported in one line.

    torch's own error lists every tensor over many lines; here the names and shapes of the
    first few, and that the file does not fit the model its own spec describes.  Keys saved
    from a wrapped model (DDP's ``module.``, ``torch.compile``'s ``_orig_mod.``) are read as
    the plain model's: gansn saves plain modules, other code may not.
    """
    if not isinstance(state, dict):
        raise ConfigError(
            f"{file} is damaged: {what} is a {type(state).__name__}, not a state dict"
        )
    state = {unwrapped_key(k): v for k, v in state.items()}
    expected = module.state_dict()
    problems = [f"no {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    for k, v in state.items():
        if k not in expected:
            continue
        if not isinstance(v, torch.Tensor):
            problems.append(f"{k} is a {type(v).__name__}, not a tensor")
        elif v.shape != expected[k].shape:
            problems.append(f"{k} is {tuple(v.shape)}, the model has {tuple(expected[k].shape)}")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(
            f"{file}: {what} does not fit the model its spec describes: "
            f"{'; '.join(problems[:3])}{more}; the file is damaged or was altered"
        )
    module.load_state_dict(state)


def load_optimizer_state(
    opt: torch.optim.Optimizer, state: dict[str, Any], what: str, file: str | Path | None
) -> None:
    """``opt.load_state_dict(state)`` after checking every per-parameter tensor's shape.

    torch accepts moment buffers of the wrong shape and fails only at the next step, with a
    broadcasting error far from the cause.
    """
    params = [p for group in opt.param_groups for p in group["params"]]
    try:
        groups = [len(g["params"]) for g in state["param_groups"]]
        per_param = state["state"]
        problems = []
        if sum(groups) != len(params):
            problems.append(f"{sum(groups)} parameters, the model has {len(params)}")
        for idx, slots in per_param.items():
            i = int(idx)
            if not 0 <= i < len(params):
                problems.append(f"state for parameter {i}, the model has {len(params)}")
                continue
            for name, v in slots.items():
                if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape != params[i].shape:
                    problems.append(
                        f"{name} of parameter {i} is {tuple(v.shape)}, "
                        f"the parameter is {tuple(params[i].shape)}"
                    )
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        problems = [f"not an optimizer state ({type(err).__name__}: {err})"]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ConfigError(
            f"{file}: {what} does not fit the model: {'; '.join(problems[:3])}{more}; the file "
            "is damaged or was altered"
        )
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{file}: {what} cannot be restored ({err})") from None


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
    load_module_state(G, *_generator_state(ckpt, ema), ckpt["path"])
    load_module_state(D, ckpt["models"]["D"], "models.D", ckpt["path"])
    return G.eval(), D.eval(), spec


def load_generator(
    path: str | Path, *, ema: bool = True, map_location: str = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Rebuild G (EMA by default) from a checkpoint file or run dir, in eval mode."""
    ckpt = load_checkpoint(path, map_location)
    spec = ModelSpec.from_dict(ckpt["spec"])
    G = build_generator(spec)
    load_module_state(G, *_generator_state(ckpt, ema), ckpt["path"])
    return G.eval(), spec


def _generator_state(ckpt: dict[str, Any], ema: bool) -> tuple[dict[str, Any], str]:
    """(state dict, its name in the checkpoint) of the generator to rebuild."""
    models = ckpt["models"]
    if ema and "G_ema" not in models:
        log.warning("%s has no EMA generator; using the raw G", ckpt.get("path"))
    return (
        (models["G_ema"], "models.G_ema")
        if ema and "G_ema" in models
        else (models["G"], "models.G")
    )
