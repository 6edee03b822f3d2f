"""Small helpers shared across gansn: devices, seeding, RNG state, atomic writes."""

from __future__ import annotations

import importlib
import os
import random
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gansn.errors import ConfigError

# ``.<name>.<random>.tmp`` beside the target: hidden, and recognisable for clean-up
TEMP_SUFFIX = ".tmp"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} was requested but CUDA is not available; use device=cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain containers (``weights_only``-loadable)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(_plain_to_numpy_state(state["numpy"]))
    random.setstate(_plain_to_python_state(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(s: tuple) -> dict[str, Any]:
    return {
        "keys": torch.from_numpy(s[1].astype(np.int64)),
        "pos": int(s[2]),
        "has_gauss": int(s[3]),
        "cached_gaussian": float(s[4]),
    }


def _plain_to_numpy_state(d: dict[str, Any]) -> tuple:
    return (
        "MT19937",
        d["keys"].numpy().astype(np.uint32),
        d["pos"],
        d["has_gauss"],
        d["cached_gaussian"],
    )


def _python_state_to_plain(s: tuple) -> dict[str, Any]:
    version, internal, gauss = s
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss": gauss,
    }


def _plain_to_python_state(d: dict[str, Any]) -> tuple:
    return (d["version"], tuple(int(v) for v in d["internal"].tolist()), d["gauss"])


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, then rename over ``path``.

    ``os.replace`` is atomic on POSIX, so a reader (or a crash) sees either the old file or
    the complete new one, never a torn write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    tmp_name = str(tmp)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename in (tmp_name, tmp):
            err.filename = str(path)  # "cannot write last.pt", not its temp file's name
        raise
    return path


def _create_temp(path: Path) -> Path:
    """An empty new ``.<name>.<random>.tmp`` beside ``path``, with the umask's permissions.

    Not ``tempfile.mkstemp``: its files are 0600, and the rename would hand that to every
    checkpoint, config and sample grid a run writes.
    """
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
            return tmp
        except FileExistsError:
            continue


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write`; a failed write is an ``OSError``."""

    def write(tmp: Path) -> None:
        # through a Python file, not a path: torch's zip writer reports a failed write (a
        # full disk) as RuntimeError("unexpected pos ..."), and only with a Python file does
        # the OSError (ENOSPC, EDQUOT, EIO ...) stay attached to it, as its context
        with open(tmp, "wb") as f:
            try:
                torch.save(obj, f)
            except RuntimeError as err:
                cause = err.__context__
                if isinstance(cause, OSError):
                    raise OSError(cause.errno, cause.strerror, str(tmp)) from err
                raise

    return atomic_write(path, write)


def remove_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files :func:`atomic_write` left in ``directory`` and its subfolders.

    ``atomic_write`` removes its temp file on any exception, but not when the process is
    killed (SIGKILL, power loss) mid-write; the next writer of the directory sweeps them.
    One level of subfolders (a run dir's ``checkpoints/``, ``samples/``, ``.hydra/``), and
    no symlinks followed: a link to a dataset inside a run dir is not ours to sweep.  Only
    call this while no other process writes there (the run dir's lock).
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    folders = [root] + [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    removed = []
    for folder in folders:
        for entry in os.scandir(folder):
            if (
                entry.name.startswith(".")
                and entry.name.endswith(TEMP_SUFFIX)
                and entry.is_file(follow_symlinks=False)
            ):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def locate(target: str) -> Any:
    """Import ``"package.module.Name"`` and return ``Name`` (a ``_target_`` without Hydra)."""
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"cannot import {target!r}: {err}") from None


def import_modules(names: list[str]) -> None:
    """Import user modules so their registry entries exist (the ``imports`` config key)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r} ({err})") from None
