"""Training: the loop, its hooks and run records (no Hydra in here)."""

from gansn.training.hooks import Hook, build_hooks
from gansn.training.record import NonFiniteLossError
from gansn.training.trainer import Trainer, build_trainer, train, validate_config

__all__ = [
    "Hook",
    "NonFiniteLossError",
    "Trainer",
    "build_hooks",
    "build_trainer",
    "train",
    "validate_config",
]
