"""Training: the composition root, the loop, its hooks and the run dir (no Hydra in here)."""

from gansn.training.build import build_run, build_trainer, train
from gansn.training.hooks import Hook, build_hooks
from gansn.training.lock import RunDirLocked, RunLock
from gansn.training.record import NonFiniteLossError, RunIOError
from gansn.training.run import Precision, Run, Schedule
from gansn.training.rundir import RunDir
from gansn.training.trainer import Trainer

__all__ = [
    "Hook",
    "NonFiniteLossError",
    "Precision",
    "Run",
    "RunDir",
    "RunDirLocked",
    "RunIOError",
    "RunLock",
    "Schedule",
    "Trainer",
    "build_hooks",
    "build_run",
    "build_trainer",
    "train",
]
