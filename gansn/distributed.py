"""torch.distributed for gansn: the process group ``torchrun`` describes, and the few
collectives the training loop and the evaluator use.

gansn runs on PyTorch's own engine: ``torchrun --nproc_per_node=N -m gansn.train ...``
starts N processes whose ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR`` the
:func:`setup` call reads; a SLURM task array started with ``tasks_per_node > 1`` (the
submitit launcher) is read from ``SLURM_*`` the same way.  Without either, everything here
is a no-op for one process, so the same code runs with and without torchrun.

Backends: ``auto`` is ``gloo`` for CPU tensors plus ``nccl`` for CUDA tensors when CUDA is
present (``"cpu:gloo,cuda:nccl"``): the loop all-reduces CUDA gradients through NCCL while
small CPU objects (evaluation features, run dirs) still go through gloo.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gansn.errors import ConfigError
from gansn.schema import BACKENDS

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# torch is imported inside the functions that use it: gansn-train asks launched() before
# Hydra, where --help and a refused command line must answer without loading torch


def _dist() -> Any:
    import torch.distributed

    return torch.distributed


@dataclass(frozen=True)
class Rank:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run dir (checkpoints, logs, grids, TensorBoard)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched() -> Rank:
    """The rank torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) or a SLURM task array
    (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``) gives this process; one process
    when neither is set.  A SLURM task array also gets ``MASTER_ADDR``/``MASTER_PORT`` (the
    first node of the job, port 29500 + job id mod 1000) unless they are set."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return Rank(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    ntasks = int(env.get("SLURM_NTASKS", "1") or 1)
    if ntasks > 1 and "SLURM_PROCID" in env:
        env.setdefault("MASTER_ADDR", _first_slurm_node(env.get("SLURM_JOB_NODELIST", "")))
        env.setdefault("MASTER_PORT", str(29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000))
        rank = Rank(int(env["SLURM_PROCID"]), ntasks, int(env.get("SLURM_LOCALID", 0)))
        env.update(RANK=str(rank.rank), WORLD_SIZE=str(ntasks), LOCAL_RANK=str(rank.local_rank))
        return rank
    return Rank()


def _first_slurm_node(nodelist: str) -> str:
    """``node[01-04,07],gpu5`` -> ``node01``: the head of SLURM's compressed node list."""
    m = re.match(r"([^,\[]+)(?:\[([^\],]+))?", nodelist)
    if m is None:
        return "127.0.0.1"
    prefix, ranges = m.group(1), m.group(2)
    return prefix if ranges is None else prefix + ranges.split("-")[0]


def setup(backend: str = "auto", timeout_s: float = 1800.0) -> Rank:
    """Join the process group the launcher describes (idempotent) and return this rank.

    One process (no launcher): nothing is initialised.  ``backend``: ``auto``, ``gloo`` or
    ``nccl`` (CUDA only).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"distributed.backend={backend!r}: must be one of {', '.join(BACKENDS)}")
    import torch

    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        return current()
    rank = launched()
    if not rank.distributed:
        return rank
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run without torchrun")
    cuda = torch.cuda.is_available()
    if backend == "nccl" and not cuda:
        raise ConfigError("distributed.backend=nccl needs CUDA; use gloo (or auto) on CPU")
    if backend == "auto":
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(rank.local_rank % torch.cuda.device_count())
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except dist.DistStoreError as err:  # the others never came: one line that says why
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise ConfigError(
            f"rank {rank.rank} of {rank.world_size} waited at {where} and the other ranks did "
            f"not join ({err}); start one process per rank: `torchrun --nproc-per-node=N "
            "gansn-train ...`, or under SLURM `srun gansn-train ...` (an sbatch script that "
            "runs gansn-train without srun starts one process for all its tasks)"
        ) from None
    log.info("rank %d of %d joined the process group (%s)", rank.rank, rank.world_size, backend)
    return rank


def current() -> Rank:
    """This process's rank in the initialised group, or one process."""
    if "torch" not in sys.modules:
        return Rank()  # no torch loaded, so no process group either
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        return Rank()
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def teardown() -> None:
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    world = current().world_size
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    _dist().all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if current().world_size == 1:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of ``t`` (in place, returned); ``t`` in one process."""
    if current().world_size > 1:
        _dist().all_reduce(t, op=_dist().ReduceOp.SUM)
    return t


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics, SN's u and v).

    DDP runs without buffer sync at forward (see :mod:`gansn.training.build`), so a
    BatchNorm's running statistics drift apart on ranks that see different data; before
    ranks sample together for an evaluation they take rank 0's, the ones its checkpoint
    holds.
    """
    if current().world_size == 1:
        return
    import torch

    with torch.no_grad():
        for b in module.buffers():
            _dist().broadcast(b, src=0)
