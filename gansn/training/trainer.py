"""The GAN training loop: no Hydra here, so tests and notebooks call it directly.

    from gansn.training import train
    trainer = train(cfg_dict, run_dir="runs/x")       # the config's hooks, then training

``cfg`` is the plain-dict form of ``conf/train.yaml`` (see ``gansn.config.compose``).
Everything that can be wrong with it is checked in ``Trainer.__init__`` and
:func:`~gansn.training.hooks.build_hooks`, before anything is written; ``Trainer.train()``
is what writes into ``run_dir``.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gansn import checkpoint as ckpt_io
from gansn import distributed, schema
from gansn.data import BatchStream, build_dataset
from gansn.errors import ConfigError, DataError
from gansn.losses import build_loss
from gansn.nn.archs import ModelSpec, build_discriminator, build_generator
from gansn.registry import check_options
from gansn.sampling import save_image, to_grid
from gansn.threads import apply_threads
from gansn.training.ema import EMA
from gansn.training.hooks import Hook, build_hooks
from gansn.training.logging import MetricsLog, read_jsonl
from gansn.training.record import NonFiniteLossError, RankRecord, RunRecord
from gansn.training.tensorboard import Plan, RunWriter, Silent, build_plan
from gansn.utils import (
    import_modules,
    locate,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)

log = logging.getLogger(__name__)


# alternating: n_dis D updates, then one G update on fresh latents (the SNGAN code);
# simultaneous: both gradients from one forward pass, then both optimizers step (the
# ALI/PacGAN Theano code's ``ali_algorithm``)
UPDATES = schema.UPDATES


def validate_config(cfg: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for values no training run can use.

    Every key of the composed config has a type and range in :data:`gansn.schema.TRAIN`;
    the message has one line per problem, naming the key and what it must be.
    """
    schema.validate_train_config(cfg)


def check_writable(run_dir: Path) -> None:
    """Fail early when ``run_dir`` cannot be created or written."""
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"output dir {run_dir}: {probe} exists and is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"output dir {run_dir} is not writable ({probe} denies writing); choose another "
            "with hydra.run.dir=<dir>"
        )


def model_spec(cfg: dict[str, Any], shape: tuple[int, ...]) -> ModelSpec:
    m = cfg["model"]
    return ModelSpec(
        arch=m["name"],
        shape=tuple(shape),
        z_dim=int(m["z_dim"]),
        width=float(m.get("width", 1.0)),
        g_norm=dict(cfg["g_norm"]),
        d_norm=dict(cfg["d_norm"]),
        options=dict(m.get("options") or {}),
    )


def build_optimizer(
    opt_cfg: dict[str, Any], params: Any, key: str = "optim"
) -> torch.optim.Optimizer:
    """``{"_target_": "torch.optim.Adam", "_partial_": true, "lr": ...}`` -> an optimizer."""
    kwargs = {k: v for k, v in opt_cfg.items() if not k.startswith("_")}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = locate(opt_cfg.get("_target_", "torch.optim.Adam"))
    check_options(f"{key} ({opt_cfg.get('_target_')})", cls, kwargs, given=("params",))
    try:
        return cls(params, **kwargs)
    except TypeError as err:
        raise ConfigError(f"optimizer {opt_cfg.get('_target_')}: {err}") from None


AMP = schema.AMP

# torch 2.13 renamed DDP's broadcast_buffers to forward_sync_buffers (which, unlike the old
# flag set to False, still syncs buffers when DDP is built)
_NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers"
    in inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


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


class Trainer:
    """Trains G and D as configured; ``train()`` runs to ``cfg["steps"]`` G updates.

    Args:
        cfg: the resolved config as plain containers.
        run_dir: where checkpoints, TensorBoard events, samples and metrics go.
        overrides: the command-line overrides the config came from (kept for resuming).
        resume: a checkpoint file or run dir to continue from.  When ``run_dir`` already
            holds ``checkpoints/last.pt``, training continues from it.
        hooks: :class:`~gansn.training.hooks.Hook` objects to run (metrics, Lipschitz
            tracking, your own); :meth:`add_hooks` adds more once G and D exist, which is
            how :func:`train` attaches the ones the config asks for.
        parallel_jobs: how many runs a launcher starts side by side on this host
            (``hydra.launcher.n_jobs``), for the default thread count: the cores are shared
            among them.
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        run_dir: str | Path,
        *,
        overrides: list[str] = (),
        resume: str | Path | None = None,
        hooks: Sequence[Hook] = (),
        parallel_jobs: int | None = None,
    ) -> None:
        validate_config(cfg)
        import_modules(list(cfg.get("imports") or []))
        self.cfg, self.run_dir, self.overrides = cfg, Path(run_dir), list(overrides)
        check_writable(self.run_dir)
        resume = resume or cfg.get("resume")
        if resume is None and (ckpt_io.checkpoint_dir(self.run_dir) / ckpt_io.LAST).is_file():
            resume = self.run_dir  # re-running into the same run dir continues it
        resume_state = ckpt_io.load_checkpoint(resume, resume=True) if resume else None

        dist_cfg = cfg.get("distributed") or {}
        self.rank = distributed.setup(str(dist_cfg.get("backend", "auto")))
        self.device = resolve_device(cfg.get("device", "auto"))
        if self.device.type == "cuda" and self.device.index is None and self.rank.distributed:
            self.device = torch.device("cuda", torch.cuda.current_device())
        # threads=N, else a fair share of the cores this process may use among the runs
        # beside it (gansn/threads.py); logged with the run's other facts in _train
        self.threads = apply_threads(int(cfg.get("threads") or 0), n_jobs=parallel_jobs)
        # Denormal floats (|x| < 1.2e-38) take a slow path on x86 CPUs. A D that saturates
        # (e.g. SNGAN setting F) fills activations and gradients with them: measured 1.6-2.8x
        # slower steps here (BENCHMARKS.md). Flushing them to zero costs nothing otherwise.
        torch.set_flush_denormal(bool(cfg.get("flush_denormal", True)))
        seed = int(cfg["seed"])
        seed_everything(seed)

        self.dataset = build_dataset(cfg["dataset"])
        self.spec = model_spec(cfg, self.dataset.shape)
        # built before comparing with a checkpoint: a misspelled norm or arch name is then
        # reported as the unknown name it is, not as a difference from the saved model
        self.G = build_generator(self.spec).to(self.device)
        self.D = build_discriminator(self.spec).to(self.device)
        self.channels_last = bool(cfg.get("channels_last", False)) and len(self.spec.shape) == 3
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.loss = build_loss(cfg["loss"])
        if resume_state is not None:
            self._check_compatible(resume_state)
        self.opt_g = build_optimizer(cfg["optim"]["g"], self.G.parameters(), "optim.g")
        self.opt_d = build_optimizer(cfg["optim"]["d"], self.D.parameters(), "optim.d")
        self._g_params = [p for p in self.G.parameters() if p.requires_grad]
        self._d_params = [p for p in self.D.parameters() if p.requires_grad]
        self.steps = int(cfg["steps"])
        if resume_state is not None and resume_state["step"] > self.steps:
            s = resume_state["step"]
            raise ConfigError(
                f"{resume_state['path']} is at step {s}, past steps={self.steps}, and a run "
                f"cannot be shortened; pass steps={s} (nothing to do) or more (continues it), "
                "or start a new run dir with hydra.run.dir=<dir>"
            )
        self.sched_g = self._scheduler(self.opt_g)
        self.sched_d = self._scheduler(self.opt_d)
        ema_cfg = cfg.get("ema", {})
        self.ema = (
            EMA(self.G, ema_cfg.get("decay", 0.999), ema_cfg.get("start", 0))
            if ema_cfg.get("enabled")
            else None
        )
        self.batch_size = int(cfg["batch_size"])
        self.g_batch_size = int(cfg.get("g_batch_size") or self.batch_size)
        self.n_dis = int(cfg["n_dis"])
        self.update = str(cfg.get("update", "alternating"))
        world = self.rank.world_size
        for key, b in (("batch_size", self.batch_size), ("g_batch_size", self.g_batch_size)):
            if b % world:
                raise ConfigError(
                    f"{key}={b} does not split over {world} ranks: it is the global batch, "
                    f"each rank takes {key}/{world}; pass a multiple of {world}"
                )
        self.stream = BatchStream(
            self.dataset,
            self.batch_size // world,
            seed=seed,
            num_workers=int(cfg.get("num_workers", 0)),
            rank=self.rank.rank,
            world_size=world,
            device=self.device,
        )
        self.amp = Precision(str(cfg.get("amp", "off")), self.device)
        self.scaler_g, self.scaler_d = self.amp.scaler(), self.amp.scaler()
        # what the training steps call: DDP and/or torch.compile wrappers of G and D, while
        # self.G/self.D stay the plain modules that checkpoints, EMA and hooks see
        self.G_step, self.D_step = self._wrap(self.G, "G"), self._wrap(self.D, "D")
        if cfg.get("compile"):
            self._probe_compiled()
        grid = cfg.get("grid", {})
        self.grid_nrow = int(grid.get("nrow", 8))
        # fixed noise depends on the seed alone, so runs that differ only in their
        # normalization show samples from the same latents
        self.fixed_noise = torch.randn(
            int(grid.get("n", 64)), self.spec.z_dim, generator=torch.Generator().manual_seed(seed)
        )
        self.hooks: list[Hook] = []
        self._hook_states: dict[str, Any] = {}  # saved hook states waiting for their hook
        self.step = 0
        self.best: dict[str, Any] = {}
        self.elapsed = 0.0  # training seconds, carried across resumes
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.stopped_by: str | None = None  # "SIGINT"/"SIGTERM" once a stop was requested
        self._last_values: dict[str, float] = {}
        self._ran_at: dict[str, int] = {}  # periodic job -> step it last ran at
        self._last_pt = ckpt_io.checkpoint_dir(self.run_dir) / ckpt_io.LAST
        # the step checkpoints/last.pt holds, as far as this trainer knows (for messages)
        self._saved_step: int | None = None
        if resume_state is not None:
            self._load_state(resume_state)
            if Path(resume_state["path"]).resolve() == self._last_pt.resolve():
                self._saved_step = self.step
            log.info("resuming from %s at step %d", resume_state["path"], self.step)
        self.add_hooks(hooks)

    def add_hooks(self, hooks: Sequence[Hook]) -> None:
        """Run ``hooks`` too; a resumed run hands each its saved state (by ``name``)."""
        for h in hooks:
            if h.name in self._hook_states:
                h.load_state_dict(self._hook_states.pop(h.name))
            self.hooks.append(h)

    # ------------------------------------------------------------------ setup
    def _wrap(self, model: nn.Module, who: str) -> nn.Module:
        """``model`` as the training steps call it: under torchrun a DDP wrapper (SyncBN
        first when asked for), then ``torch.compile`` when asked for.

        No buffer sync at forward (``forward_sync_buffers=False``, torch 2.13's name for
        ``broadcast_buffers=False``): DDP's default re-broadcasts rank 0's buffers in place
        at every forward, and D is called on the real and the fake batch before one
        backward, so SN's u/v and BN's running statistics would be overwritten between the
        two calls -- the in-place autograd error of pytorch#22095/#65907 (StudioGAN and
        MMGeneration turn it off too).  Buffers are still broadcast once at construction
        (the new flag keeps that; the old one skipped it).  Nothing is lost: parameters are
        identical on every rank after each all-reduced step and SN's u/v follow from them
        and their common start deterministically, and BN's running statistics are taken from
        rank 0 before every evaluation.
        ``find_unused_parameters`` stays off: SN's and weight norm's parametrizations
        (``parametrizations.weight.original``) are used in every forward, so no parameter
        is ever unused (the ``weight_orig`` error of Lightning #20685 came from the old
        hook-based SN, which gansn does not use).
        """
        dist_cfg = self.cfg.get("distributed") or {}
        if self.rank.distributed:
            if dist_cfg.get("sync_bn"):
                if self.device.type != "cuda":
                    raise ConfigError(
                        "distributed.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on "
                        "GPUs only); drop it on CPU"
                    )
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
                setattr(self, who, model)
            model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                **_NO_FORWARD_BUFFER_SYNC,
            )
        if who == "D":
            # the gradient penalty differentiates D twice, which compiled graphs cannot
            self._D_ddp = model
        if self.cfg.get("compile"):
            model = _Compiled(model, who)
        return model

    def _probe_compiled(self) -> None:
        """compile=true: one pass of each training pattern through the compiled modules, on
        batches of the training size, in isolation (RNG, buffers and gradients restored).

        Compiling happens here rather than mid-step, and a compiled module that fails --
        at the call, or only in its backward pass, as SN's D does when it is called on the
        real and the fake batch before one backward -- is replaced by the eager module with
        one warning.
        """
        n = self.batch_size // self.rank.world_size
        shape = (n, *self.spec.shape)

        def d_pattern() -> None:
            x = torch.randn(shape, device=self.device)
            (self.D_step(x).sum() + self.D_step(x.flip(0)).sum()).backward()

        def g_pattern() -> None:
            z = torch.randn(n, self.spec.z_dim, device=self.device)
            self.D(self.G_step(z)).sum().backward(inputs=self._g_params)

        for who, pattern in (("D", d_pattern), ("G", g_pattern)):
            wrapper = self.D_step if who == "D" else self.G_step
            with self._isolated():
                try:
                    with self.amp.autocast():
                        pattern()
                except Exception as err:
                    wrapper.fail(err)
            for p in (*self._g_params, *self._d_params):
                p.grad = None

    def _scheduler(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        steps = self.steps
        if self.cfg["optim"].get("lr_decay", "none") == "linear":

            def factor(s: int) -> float:
                return max(0.0, 1.0 - s / steps)
        else:

            def factor(s: int) -> float:
                return 1.0

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def _check_compatible(self, state: dict[str, Any]) -> None:
        saved = ModelSpec.from_dict(state["spec"])
        diffs = saved.differences(self.spec)
        if diffs:
            raise ConfigError(
                f"checkpoint {state['path']} was trained with a different model; it cannot "
                "be resumed with this config (checkpoint -> config): " + "; ".join(diffs)
            )

    # ------------------------------------------------------------- state I/O
    def state_dict(self) -> dict[str, Any]:
        models = {"G": self.G.state_dict(), "D": self.D.state_dict()}
        state: dict[str, Any] = {
            "step": self.step,
            "spec": self.spec.to_dict(),
            "config": self.cfg,
            "overrides": self.overrides,
            "models": models,
            "optim": {"G": self.opt_g.state_dict(), "D": self.opt_d.state_dict()},
            "sched": {"G": self.sched_g.state_dict(), "D": self.sched_d.state_dict()},
            "rng": rng_state(),
            "data": self.stream.state_dict(),
            "fixed_noise": self.fixed_noise,
            "best": self.best,
            "elapsed": self.elapsed,
            "hooks": {h.name: h.state_dict() for h in self.hooks},
        }
        if self.ema is not None:
            models["G_ema"] = self.ema.shadow.state_dict()
            state["ema"] = {"num_updates": self.ema.num_updates}
        if self.amp.mode == "fp16":
            state["scaler"] = {"G": self.scaler_g.state_dict(), "D": self.scaler_d.state_dict()}
        return state

    def _load_state(self, s: dict[str, Any]) -> None:
        file = s["path"]
        models = s["models"]
        ckpt_io.load_module_state(self.G, models["G"], "models.G", file)
        ckpt_io.load_module_state(self.D, models["D"], "models.D", file)
        for who, opt in (("G", self.opt_g), ("D", self.opt_d)):
            ckpt_io.load_optimizer_state(opt, s["optim"].get(who), f"optim.{who}", file)
        if self.ema is not None:
            if "G_ema" in models:
                ckpt_io.load_module_state(self.ema.shadow, models["G_ema"], "models.G_ema", file)
            else:
                self.ema.copy_from(self.G)
        # the rest is plain data; a damaged entry fails inside torch/numpy with a message
        # about their internals, so name the entry instead
        for part, restore in (
            ("ema", lambda: self._load_ema_count(s)),
            ("sched", lambda: self._load_sched(s["sched"])),
            ("data", lambda: self.stream.load_state_dict(s["data"])),
            ("rng", lambda: set_rng_state(s["rng"])),
            ("scaler", lambda: self._load_scalers(s.get("scaler"))),
        ):
            try:
                restore()
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
                raise ConfigError(
                    f"{file} is damaged: its {part!r} state cannot be restored "
                    f"({type(err).__name__}: {err})"
                ) from None
        self.fixed_noise = s["fixed_noise"]
        self.best = dict(s.get("best") or {})
        self.elapsed = float(s.get("elapsed", 0.0))
        self._hook_states = dict(s.get("hooks") or {})
        self.step = int(s["step"])

    def _load_scalers(self, scalers: dict[str, Any] | None) -> None:
        # a run that changes amp on resume starts its loss scale afresh
        if scalers and self.amp.mode == "fp16":
            self.scaler_g.load_state_dict(scalers["G"])
            self.scaler_d.load_state_dict(scalers["D"])

    def _load_ema_count(self, s: dict[str, Any]) -> None:
        if self.ema is not None and "G_ema" in s["models"]:
            self.ema.num_updates = int(s["ema"]["num_updates"])

    def _load_sched(self, sched: dict[str, Any]) -> None:
        self.sched_g.load_state_dict(sched["G"])
        self.sched_d.load_state_dict(sched["D"])

    def save(self, name: str = ckpt_io.LAST) -> Path:
        # a step can leave NaN weights behind a finite loss (the loss is taken before the
        # update); saving them would replace the last good checkpoint with a useless one
        for who, model in (("G", self.G), ("D", self.D)):
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise NonFiniteLossError(
                    f"{who}'s weights are NaN/Inf after G step {self.step}; training stopped "
                    f"and {name} was not written. {self.checkpoint_note()}; lower the learning "
                    "rate or try another normalization/loss"
                )
        if not self.rank.is_main:
            return ckpt_io.checkpoint_dir(self.run_dir) / name  # rank 0 writes it
        path = ckpt_io.save_checkpoint(
            self.state_dict(), ckpt_io.checkpoint_dir(self.run_dir) / name
        )
        if name == ckpt_io.LAST:
            self._saved_step = self.step
        log.debug("saved %s", path)
        return path

    def checkpoint_note(self) -> str:
        """Which checkpoint this run leaves, in words: the truth for a stop message."""
        if not self._last_pt.is_file():
            return "No checkpoint was saved, so there is nothing to resume from"
        at = "" if self._saved_step is None else f" (step {self._saved_step})"
        return f"The last good checkpoint, {self._last_pt}{at}, is kept"

    @property
    def done(self) -> bool:
        """Whether the run already is at ``steps`` (a finished run re-run: nothing to do)."""
        return self.step >= self.steps

    # --------------------------------------------------------------- training
    def latents(self, n: int) -> torch.Tensor:
        """This rank's ``(n / world_size, z_dim)`` share of a global latent batch of ``n``.

        Every rank draws the whole global batch from the same RNG stream and keeps its
        slice: ``n * z_dim`` normals cost nothing next to a forward pass, and the training
        noise then does not depend on the number of ranks (2 ranks x B/2 train on exactly
        the latents of 1 process x B, and a run resumes on any number of ranks).
        """
        z = torch.randn(n, self.spec.z_dim, device=self.device)
        share = n // self.rank.world_size
        return z[self.rank.rank * share : (self.rank.rank + 1) * share]

    def _real(self) -> torch.Tensor:
        real, _ = self.stream.next_batch()
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        return real

    def d_step(self) -> dict[str, torch.Tensor]:
        """One D update on a real batch and a fresh fake batch."""
        real = self._real()
        z = self.latents(self.batch_size)
        with torch.no_grad(), self.amp.autocast():
            fake = self.G(z)
        # separate calls, as the SNGAN code does: BatchNorm in D then normalizes real and
        # fake batches with their own statistics (under DDP this is why forward buffer sync
        # is off: see _wrap)
        with self.amp.autocast():
            d_real, d_fake = self.D_step(real), self.D_step(fake)
            loss = self.loss.d_loss(d_real, d_fake)
        penalty = self.loss.penalty(self._D_ddp, real, fake.float())
        if penalty is not None:
            loss = loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        return {
            "loss/d": loss.detach().float(),
            "d/real": d_real.detach().float().mean(),
            "d/fake": d_fake.detach().float().mean(),
        }

    def g_step(self) -> dict[str, torch.Tensor]:
        """One G update on a fresh latent batch.

        D is called as the plain module and the backward pass stops at G's parameters
        (``inputs=``): D's gradients would be thrown away before its next update anyway,
        and under DDP they would cost an all-reduce of D for nothing.
        """
        z = self.latents(self.g_batch_size)
        with self.amp.autocast():
            loss = self.loss.g_loss(self.D(self.G_step(z)))
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss).backward(inputs=self._g_params)
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        return {"loss/g": loss.detach().float()}

    def simultaneous_step(self) -> dict[str, torch.Tensor]:
        """One simultaneous D and G update from a single forward pass.

        Both losses are taken at the same (G, D) on the same fake batch; each side's
        gradient is its own loss's, then both optimizers step.  This is the update of the
        ALI/PacGAN code (``ali_algorithm``: one Theano function computing both gradients).
        """
        real = self._real()
        z = self.latents(self.batch_size)
        with self.amp.autocast():
            fake = self.G_step(z)
            d_real, d_fake = self.D_step(real), self.D_step(fake)
            d_loss = self.loss.d_loss(d_real, d_fake)
            g_loss = self.loss.g_loss(d_fake)
        penalty = self.loss.penalty(self._D_ddp, real, fake.detach().float())
        if penalty is not None:
            d_loss = d_loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        # ``inputs=`` keeps each loss's gradient on its own side: D's loss does not reach
        # G's parameters and G's loss leaves no gradient in D (under DDP each wrapper then
        # sees exactly one backward pass over its parameters per step)
        self.scaler_d.scale(d_loss).backward(inputs=self._d_params, retain_graph=True)
        self.scaler_g.scale(g_loss).backward(inputs=self._g_params)
        for scaler, opt in ((self.scaler_d, self.opt_d), (self.scaler_g, self.opt_g)):
            scaler.step(opt)
            scaler.update()
        return {
            "loss/d": d_loss.detach().float(),
            "d/real": d_real.detach().float().mean(),
            "d/fake": d_fake.detach().float().mean(),
            "loss/g": g_loss.detach().float(),
        }

    def train_step(self) -> dict[str, torch.Tensor]:
        """``n_dis`` D updates and one G update (or one simultaneous update), schedulers
        and EMA: one generator step."""
        self.G.train()
        self.D.train()
        if self.update == "simultaneous":
            out = self.simultaneous_step()
        else:
            for _ in range(self.n_dis):
                out = self.d_step()
            out.update(self.g_step())
        if self.amp.mode == "fp16":
            with warnings.catch_warnings():
                # the GradScaler skips the optimizer step of a batch whose gradients
                # overflowed (by design); torch then warns that the scheduler went first
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
                self.sched_g.step()
                self.sched_d.step()
        else:
            self.sched_g.step()
            self.sched_d.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.G, self.step)
        return out

    @property
    def last_values(self) -> dict[str, float]:
        """The latest value of every scalar logged so far."""
        return dict(self._last_values)

    @property
    def sampler(self) -> nn.Module:
        """The generator to sample from: the EMA copy when kept, else G."""
        return self.ema.shadow if self.ema is not None else self.G

    def train(self) -> dict[str, float]:
        """Run to ``steps`` G updates; return the last logged values.

        A run already at ``steps`` (re-run with the same ``steps``) does nothing and writes
        nothing.
        """
        if self.done:
            log.info("%s is at step %d of %d: nothing to do", self.run_dir, self.step, self.steps)
            return dict(self._last_values)
        try:
            return self._train()
        except DataError as err:
            # bad data found mid-run (an image truncated past its readable header): one
            # line that also says where the run stands
            raise DataError(
                f"{err}; training stopped at G step {self.step}. {self.checkpoint_note()}"
            ) from None

    def _train(self) -> dict[str, float]:
        main = self.rank.is_main
        plan = self._plan()
        with (
            RunRecord(self) if main else RankRecord(self) as record,
            RunWriter(self.run_dir, self.step or None, plan) if main else Silent() as writer,
        ):
            if main:
                self.metrics.truncate_after(self.step)
            if self.step == 0:
                writer.config(self.cfg, self.spec)
            writer.layout(self.step, self._logged_tags() if main and self.step else ())
            log.info(
                "run dir %s; training %s G=%s D=%s for %d steps on %s",
                self.run_dir,
                self.spec.arch,
                self.spec.g_norm["name"],
                self.spec.d_norm["name"],
                self.steps,
                self.device,
            )
            log.info("%s", self.threads.describe())
            log_every = int(self.cfg.get("log_every", 0))
            sums: dict[str, torch.Tensor] = {}
            n_sum, t_window = 0, time.perf_counter()
            while self.step < self.steps and self.stopped_by is None:
                t0 = time.perf_counter()
                out = self.train_step()
                if self.rank.distributed:
                    out = self._agree(out)
                self.elapsed += time.perf_counter() - t0
                try:
                    _check_finite(out, self.step, self.checkpoint_note)
                except NonFiniteLossError:
                    # a diverged run keeps its HParams entry (no end record: it did not end)
                    writer.hparams(self.cfg, self.spec, finished=False)
                    raise
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_sum += 1
                postfix = None
                last = self.step == self.steps or self.stopped_by is not None
                if (log_every and self.step % log_every == 0) or last:
                    values = self._window(sums, n_sum, time.perf_counter() - t_window)
                    self._emit(writer, values)
                    postfix = {
                        "d": f"{values['loss/d']:.3f}",
                        "g": f"{values['loss/g']:.3f}",
                        "img/s": f"{values['time/images_per_s']:.0f}",
                    }
                    sums, n_sum, t_window = {}, 0, time.perf_counter()
                record.advance(postfix)
                self._periodic(writer, final=False)
            if self.stopped_by is not None:
                record.status = "interrupted"
                self.save()
                # the stopped run is listed too; the resumed run's end completes its entry
                writer.hparams(self.cfg, self.spec, finished=False)
                log.warning(
                    "stopped by %s at step %d; checkpoint saved to %s; resume with resume=%s",
                    self.stopped_by,
                    self.step,
                    ckpt_io.checkpoint_dir(self.run_dir) / ckpt_io.LAST,
                    self.run_dir,
                )
            else:
                self._periodic(writer, final=True)
                writer.hparams(self.cfg, self.spec)
        return dict(self._last_values)

    def _plan(self) -> Plan:
        """What this run logs to TensorBoard (layout, HParams columns, text-only tags)."""
        constant_lr = self.cfg["optim"].get("lr_decay", "none") != "linear"
        return build_plan(self.D, self.hooks, constant_lr=constant_lr)

    def _logged_tags(self) -> set[str]:
        """Every tag an earlier session of this run wrote to metrics.jsonl."""
        if not self.metrics.path.is_file():
            return set()
        return {k for row in read_jsonl(self.metrics.path) for k in row}

    def _agree(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One all-reduce per step: the losses averaged over ranks (what one process with
        the whole batch logs), and whether any rank was asked to stop, so all ranks stop
        (and save) after the same step and a NaN on one rank stops every rank."""
        keys = sorted(out)
        stop = torch.tensor([float(self.stopped_by is not None)], device=self.device)
        vec = torch.cat([torch.stack([out[k].float() for k in keys]), stop])
        distributed.all_reduce_sum(vec)
        if vec[-1] > 0 and self.stopped_by is None:
            self.stopped_by = "SIGTERM"  # another rank's signal (torchrun forwards SIGTERM)
        return {k: vec[i] / self.rank.world_size for i, k in enumerate(keys)}

    def _window(self, sums: dict[str, torch.Tensor], n: int, seconds: float) -> dict[str, float]:
        """Means over the last ``n`` steps, learning rates and speed."""
        values = {k: float(v) / n for k, v in sums.items()}
        values["lr/g"] = self.opt_g.param_groups[0]["lr"]
        values["lr/d"] = self.opt_d.param_groups[0]["lr"]
        values["time/step_ms"] = 1000 * seconds / n
        values["time/images_per_s"] = self.batch_size * self.n_dis * n / seconds  # all ranks
        return values

    # ------------------------------------------------------------ periodic work
    def _periodic(self, writer: Any, final: bool) -> None:
        def due(key: str, every: int) -> bool:
            # at the end everything runs once more, unless it just ran at this very step
            if final and self._ran_at.get(key) == self.step:
                return False
            if final or (every > 0 and self.step % every == 0):
                self._ran_at[key] = self.step
                return True
            return False

        cfg, main = self.cfg, self.rank.is_main
        for hook in self.hooks:
            if due(hook.name, hook.every):
                collective = getattr(hook, "collective", False)
                if not (main or collective):
                    continue  # rank 0 measures alone; the others train on
                if collective:
                    # ranks sample together: with rank 0's BN statistics, the checkpoint's
                    distributed.broadcast_buffers(self.G)
                    distributed.broadcast_buffers(self.sampler)
                try:
                    with self._isolated():
                        values = hook(self, self.step)
                except Exception as err:
                    self._save_after_failed(f"the {hook.name} hook", err)
                    raise
                self._emit(writer, values)
                self._track_best(values)
        if (due("samples", int(cfg.get("sample_every", 0))) or final) and main:
            self.write_samples(writer, final)
        if due("ckpt", int(cfg.get("ckpt_every", 0))):
            self.save()
        keep = int(cfg.get("keep_every", 0))
        if keep and self.step % keep == 0:
            self.save(f"step_{self.step:06d}.pt")

    def _save_after_failed(self, what: str, err: Exception) -> None:
        """A measurement failed (an evaluation's bad input, a metric's bug): save what was
        trained before the error propagates, so no evaluation crash loses a training run;
        the error then says which checkpoint is kept."""
        if self._saved_step != self.step:
            try:
                self.save()
            except Exception as save_err:  # NaN weights, a full disk: the first error stands
                log.error("saving the checkpoint after %s failed failed too: %s", what, save_err)
        note = f"{what} failed at G step {self.step}. {self.checkpoint_note()}"
        if isinstance(err, ConfigError):  # one line on stderr: the note goes into it
            err.args = (f"{err}; {note}", *err.args[1:])
        elif self.rank.is_main:  # a bug: its traceback follows this line
            log.error("%s; evaluate it with gansn-eval fake=%s", note, self.run_dir)

    def _emit(self, writer: Any, values: dict[str, float]) -> None:
        if not values:
            return
        if self.rank.is_main:
            writer.scalars(values, self.step)
            self.metrics.append(self.step, self.elapsed, values)
        self._last_values.update({k: v for k, v in values.items() if isinstance(v, float)})

    def _track_best(self, values: dict[str, float]) -> None:
        metrics_cfg = self.cfg.get("metrics") or {}
        tag = metrics_cfg.get("best")
        if not tag or tag not in values:
            return
        # imported here: the metrics package brings scipy (~1.7 s of start-up) that runs
        # without evaluation never need; a run that keeps a best metric has loaded it already
        from gansn.metrics.core import metric_mode

        higher = metric_mode(tag) == "max"
        v = float(values[tag])
        old = self.best.get("value")
        if math.isfinite(v) and (old is None or (v > old if higher else v < old)):
            self.best = {"tag": tag, "value": v, "step": self.step}
            self.save(ckpt_io.BEST)
            log.info("new best %s = %.4f at step %d", tag, v, self.step)

    @contextmanager
    def _isolated(self):
        """Run measurement code without touching training state: RNG forked, modes and
        buffers (BN running stats, SN u/v) restored."""
        buffers = {m: [b.detach().clone() for b in m.buffers()] for m in (self.G, self.D)}
        modes = {m: m.training for m in (self.G, self.D)}
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            try:
                yield
            finally:
                with torch.no_grad():
                    for m, saved in buffers.items():
                        for b, s in zip(m.buffers(), saved):
                            b.copy_(s)
                        m.train(modes[m])

    @torch.no_grad()
    def write_samples(self, writer: Any, final: bool = False) -> Path:
        G = self.sampler
        was_training = G.training
        G.eval()
        x = G(self.fixed_noise.to(self.device)).float().cpu()
        G.train(was_training)
        grid = to_grid(x, self.grid_nrow, centers=getattr(self.dataset, "centers", None))
        writer.image("samples/fixed", grid, self.step)
        name = "final.png" if final else f"step_{self.step:06d}.png"
        return save_image(grid, self.run_dir / "samples" / name)


class _Compiled:
    """``torch.compile(model)``, or ``model`` itself once compiling it failed.

    Compilation happens at the first call; where it cannot handle a module (a
    parametrization or a user layer dynamo does not trace, no C++ compiler for inductor),
    the run warns once and goes on uncompiled rather than stopping.
    """

    def __init__(self, model: nn.Module, who: str) -> None:
        self.eager, self.who = model, who
        self.compiled: Any = torch.compile(model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:
                self.fail(err)
        return self.eager(*args, **kwargs)

    def fail(self, err: BaseException) -> None:
        """Go on with the eager module, saying once why."""
        if self.compiled is None:
            return
        first = (str(err).strip().splitlines() or [""])[0][:200]
        log.warning(
            "compile=true: torch.compile cannot run %s here (%s: %s); training it uncompiled",
            self.who,
            type(err).__name__,
            first,
        )
        self.compiled = None


def _check_finite(
    out: dict[str, torch.Tensor], step: int, checkpoint_note: Callable[[], str]
) -> None:
    for k, v in out.items():
        if not torch.isfinite(v).all():
            raise NonFiniteLossError(
                f"{k} is {float(v)} at G step {step}; training stopped. {checkpoint_note()}; "
                "lower the learning rate or try another normalization/loss"
            )


def build_trainer(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    hooks: Sequence[Hook] = (),
    parallel_jobs: int | None = None,
) -> Trainer:
    """A :class:`Trainer` for ``cfg`` with the hooks its config asks for (after ``hooks``).

    Everything is validated and built here and nothing is written, so a caller can still
    refuse (or write its own files) before ``trainer.train()``.
    """
    trainer = Trainer(
        cfg, run_dir, overrides=overrides, resume=resume, hooks=hooks, parallel_jobs=parallel_jobs
    )
    trainer.add_hooks(
        build_hooks(
            cfg,
            D=trainer.D,
            dataset=trainer.dataset,
            shape=trainer.spec.shape,
            z_dim=trainer.spec.z_dim,
            device=trainer.device,
        )
    )
    return trainer


def train(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    hooks: Sequence[Hook] = (),
) -> Trainer:
    """Build the run (:func:`build_trainer`) and train it; returns the trained trainer
    (``.step``, ``.G``, ``.stopped_by``, ``.last_values``).

    What ``gansn-train`` and the tests call, as lightning-hydra-template's ``train(cfg)``.
    """
    trainer = build_trainer(cfg, run_dir, overrides=overrides, resume=resume, hooks=hooks)
    trainer.train()
    return trainer
