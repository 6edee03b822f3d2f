"""What a :class:`~gansn.training.trainer.Trainer` trains: a :class:`Run` of built objects.

:func:`gansn.training.build.build_run` builds one from a config, once (data, models,
optimizers, precision, distributed wrappers, hooks, resume state); a notebook can build
one by hand (docs/python_api.md).  The trainer only runs the loop over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from gansn import schema
from gansn.distributed import Rank
from gansn.errors import ConfigError
from gansn.nn.archs import ModelSpec
from gansn.training.ema import EMA
from gansn.training.hooks import Hook

AMP = schema.AMP


@dataclass
class Schedule:
    """When the loop does what, in G steps (an interval of 0: never, except at the end).

    ``steps``: G updates to train to; ``n_dis`` D updates per G update (``alternating``),
    or one ``simultaneous`` update of both; ``batch_size``: the global D batch (split over
    ranks); ``g_batch_size``: G's latent batch (None: ``batch_size``).
    """

    steps: int
    n_dis: int
    batch_size: int
    log_every: int
    sample_every: int
    ckpt_every: int
    keep_every: int
    update: str  # alternating (n_dis D updates, then one G update) | simultaneous
    g_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.update not in schema.UPDATES:
            raise ConfigError(f"update must be one of {', '.join(schema.UPDATES)}")
        self.g_batch_size = int(self.g_batch_size or self.batch_size)


class Precision:
    """``amp=off|bf16|fp16``: autocast for forward passes (and the losses on their outputs),
    and, for fp16, a ``GradScaler`` per optimizer.

    Backward passes, optimizer steps, SN's power iteration (see
    :class:`gansn.nn.norms.SpectralNormFP32`) and every Lipschitz estimate stay fp32.
    """

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in AMP:
            raise ConfigError(f"amp must be one of {', '.join(AMP)}, got {mode!r}")
        self.mode, self.device_type = mode, device.type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)

    def autocast(self) -> Any:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def scaler(self) -> torch.amp.GradScaler:
        # bf16 keeps fp32's exponent range: only fp16 gradients need loss scaling
        return torch.amp.GradScaler(self.device_type, enabled=self.mode == "fp16")


@dataclass
class Run:
    """The built objects of one run: what the trainer trains, logs and checkpoints.

    Required: the models, their loss and optimizers, ``batches`` (an object with
    ``next_batch() -> (x, y)`` on ``device`` and ``state_dict``/``load_state_dict``, e.g.
    :class:`gansn.data.BatchStream`), the model ``spec`` (saved in checkpoints, so
    ``gansn-sample`` rebuilds G), the ``schedule``, and ``fixed_noise`` ((n, z_dim): the
    latents of every sample grid, shown ``grid_nrow`` per row).

    Optional: ``cfg`` (the plain config, recorded in checkpoints and TensorBoard; a run
    without one gets no HParams entry), learning-rate schedulers (None: constant), an
    :class:`~gansn.training.ema.EMA` of G, mixed ``precision``, ``hooks``, this process's
    ``rank`` under torchrun, and ``G_step``/``D_step``: what the training steps call (DDP
    and/or ``torch.compile`` wrappers of ``G``/``D``, which checkpoints, EMA and hooks see
    plain).  ``step``, ``elapsed``, ``saved_step``, ``hook_states`` and ``best`` are where a
    resumed run stands.
    """

    G: nn.Module
    D: nn.Module
    loss: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    batches: Any
    spec: ModelSpec
    schedule: Schedule
    fixed_noise: torch.Tensor
    grid_nrow: int
    device: torch.device
    cfg: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    dataset: Any = None
    sched_g: torch.optim.lr_scheduler.LRScheduler | None = None
    sched_d: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: EMA | None = None
    precision: Precision | None = None
    hooks: list[Hook] = field(default_factory=list)
    rank: Rank = field(default_factory=Rank)
    G_step: Callable[..., torch.Tensor] | None = None
    D_step: Callable[..., torch.Tensor] | None = None
    # D as the gradient penalty calls it: under torchrun its DDP wrapper, never compiled
    # (the penalty differentiates D twice, which compiled graphs cannot)
    D_penalty: nn.Module | None = None
    channels_last: bool = False
    threads: Any = None  # gansn.threads' record of the thread count, logged at the start
    step: int = 0
    elapsed: float = 0.0  # training seconds, carried across resumes
    saved_step: int | None = None  # the step checkpoints/last.pt of the run dir holds
    hook_states: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)  # for the hook that keeps best.pt
    scaler_g: torch.amp.GradScaler | None = None  # fp16's loss scaling (None: precision's)
    scaler_d: torch.amp.GradScaler | None = None

    # the learning rates never change (no scheduler given): TensorBoard shows them as text
    constant_lr: bool = field(init=False)

    def __post_init__(self) -> None:
        self.constant_lr = self.sched_g is None and self.sched_d is None
        # a LambdaLR of factor 1 all the same: the checkpoint's "sched" entry has one shape
        if self.sched_g is None:
            self.sched_g = torch.optim.lr_scheduler.LambdaLR(self.opt_g, _constant)
        if self.sched_d is None:
            self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, _constant)
        if self.precision is None:
            self.precision = Precision("off", self.device)
        if self.scaler_g is None:
            self.scaler_g = self.precision.scaler()
        if self.scaler_d is None:
            self.scaler_d = self.precision.scaler()
        if self.G_step is None:
            self.G_step = self.G
        if self.D_step is None:
            self.D_step = self.D
        if self.D_penalty is None:
            self.D_penalty = self.D
        self.hooks = list(self.hooks)


def _constant(step: int) -> float:
    return 1.0


@contextmanager
def isolated(models: tuple[nn.Module, ...], device: torch.device) -> Iterator[None]:
    """Run measurement code without touching training state: RNG forked, modes and
    buffers (BN running stats, SN u/v) of ``models`` restored."""
    buffers = {m: [b.detach().clone() for b in m.buffers()] for m in models}
    modes = {m: m.training for m in models}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for m, saved in buffers.items():
                    for b, s in zip(m.buffers(), saved):
                        b.copy_(s)
                    m.train(modes[m])
