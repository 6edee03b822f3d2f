"""Training: the loop, checkpoints, EMA and run outputs (no Hydra in here)."""

from gansn.training.trainer import Hook, NonFiniteLossError, Trainer, validate_config

__all__ = ["Hook", "NonFiniteLossError", "Trainer", "validate_config"]
