"""Training: the loop, its hooks and run records (no Hydra in here)."""

from gansn.training.hooks import Hook, build_hooks
from gansn.training.lock import RunDirLocked, RunLock
from gansn.training.record import NonFiniteLossError, RunIOError
from gansn.training.trainer import Trainer, build_trainer, train, validate_config

__all__ = [
    "Hook",
    "NonFiniteLossError",
    "RunDirLocked",
    "RunIOError",
    "RunLock",
    "Trainer",
    "build_hooks",
    "build_trainer",
    "train",
    "validate_config",
]
