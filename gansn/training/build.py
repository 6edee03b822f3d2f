"""The composition root: a config becomes a :class:`~gansn.training.run.Run`, once.

    from gansn.training import build_run, Trainer
    run = build_run(cfg, "runs/x")            # validated and built; nothing written
    Trainer(run, "runs/x").train()

:func:`build_run` is the one place that reads the training config and builds from it, in
this order (the order fixes the RNG stream, so exact resume depends on it): the config,
validated and completed with its declared defaults (once: nothing below has its own),
plugins, the checkpoint to resume (loaded once), the process group, device and threads, the
seed, data, models, loss, optimizers, schedulers, EMA, precision, the DDP/compile wrappers,
the fixed noise, the resumed state, and last the hooks.  Everything that can be wrong with
the config is found here, before anything is written.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gansn import checkpoint as ckpt_io
from gansn import distributed, schema
from gansn.data import BatchStream, build_dataset
from gansn.distributed import Rank
from gansn.errors import ConfigError
from gansn.losses import build_loss
from gansn.nn.archs import ModelSpec, build_discriminator, build_generator
from gansn.registry import check_options
from gansn.threads import apply_threads
from gansn.training.ema import EMA
from gansn.training.hooks import Hook, build_hooks
from gansn.training.run import Precision, Run, Schedule, isolated
from gansn.training.rundir import check_writable
from gansn.training.trainer import Trainer
from gansn.utils import import_modules, locate, resolve_device, seed_everything, set_rng_state

log = logging.getLogger(__name__)


def model_spec(cfg: dict[str, Any], shape: tuple[int, ...]) -> ModelSpec:
    m = cfg["model"]
    return ModelSpec(
        arch=m["name"],
        shape=tuple(shape),
        z_dim=int(m["z_dim"]),
        width=float(m["width"]),
        g_norm=dict(cfg["g_norm"]),
        d_norm=dict(cfg["d_norm"]),
        options=dict(m.get("options") or {}),  # absent or null: the arch's own defaults
    )


def build_optimizer(
    opt_cfg: dict[str, Any], params: Any, key: str = "optim"
) -> torch.optim.Optimizer:
    """``{"_target_": "torch.optim.Adam", "_partial_": true, "lr": ...}`` -> an optimizer."""
    kwargs = {k: v for k, v in opt_cfg.items() if not k.startswith("_")}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    target = opt_cfg["_target_"]
    cls = locate(target)
    check_options(f"{key} ({target})", cls, kwargs, given=("params",))
    try:
        return cls(params, **kwargs)
    except TypeError as err:
        raise ConfigError(f"optimizer {target}: {err}") from None


def schedule(cfg: dict[str, Any]) -> Schedule:
    """The loop's :class:`Schedule` from the config's run keys."""
    return Schedule(
        steps=int(cfg["steps"]),
        n_dis=int(cfg["n_dis"]),
        batch_size=int(cfg["batch_size"]),
        g_batch_size=cfg["g_batch_size"],
        update=str(cfg["update"]),
        log_every=int(cfg["log_every"]),
        sample_every=int(cfg["sample_every"]),
        ckpt_every=int(cfg["ckpt_every"]),
        keep_every=int(cfg["keep_every"]),
    )


def build_run(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | dict[str, Any] | None = None,
    hooks: Sequence[Hook] = (),
    rank: Rank | None = None,
    parallel_jobs: int | None = None,
) -> Run:
    """Build the run ``cfg`` describes, to be trained in ``run_dir``; nothing is written.

    cfg: the training config as plain dicts and lists (a composed ``DictConfig`` through
        ``gansn.config.to_plain``: checkpoints record it and hold plain containers only);
        keys it lacks take their declared defaults (``gansn.schema.complete``), and the
        run's ``cfg`` is that completed plain dict, read by key (``cfg["log_every"]``).
    overrides: the command-line overrides the config came from (kept for resuming).
    resume: a checkpoint file or run dir to continue from, or a checkpoint already loaded
        with ``load_checkpoint(..., resume=True)``.  When ``run_dir`` already holds
        ``checkpoints/last.pt``, training continues from it.
    hooks: hooks to run before the ones the config asks for (``lipschitz_every``, metrics).
    rank: this process's place under torchrun, once the caller joined the process group
        (None: joined here).
    parallel_jobs: how many runs a launcher starts side by side on this host, for the
        default thread count (the cores are shared among them).
    """
    schema.validate_train_config(cfg)
    # the one completion: a key the config lacks (built by hand, or saved by an older gansn)
    # takes its declared default (gansn.schema), so everything built below -- the hooks, the
    # checkpoint's record of the config, TensorBoard's -- reads every key plainly
    cfg = schema.complete(cfg)
    import_modules(list(cfg["imports"] or []))  # null: none
    run_dir = Path(run_dir)
    check_writable(run_dir)
    state = _resume_state(cfg, run_dir, resume)

    if rank is None:
        rank = distributed.setup(str(cfg["distributed"]["backend"]))
    device = resolve_device(cfg["device"])
    if device.type == "cuda" and device.index is None and rank.distributed:
        device = torch.device("cuda", torch.cuda.current_device())
    # threads=N, else a fair share of the cores this process may use among the runs
    # beside it (gansn/threads.py); logged with the run's other facts when training starts
    threads = apply_threads(int(cfg["threads"]), n_jobs=parallel_jobs)
    # Denormal floats (|x| < 1.2e-38) take a slow path on x86 CPUs. A D that saturates
    # (e.g. SNGAN setting F) fills activations and gradients with them: measured 1.6-2.8x
    # slower steps here (BENCHMARKS.md). Flushing them to zero costs nothing otherwise.
    torch.set_flush_denormal(bool(cfg["flush_denormal"]))
    seed = int(cfg["seed"])
    seed_everything(seed)

    dataset = build_dataset(cfg["dataset"])
    spec = model_spec(cfg, dataset.shape)
    # built before comparing with a checkpoint: a misspelled norm or arch name is then
    # reported as the unknown name it is, not as a difference from the saved model
    G = build_generator(spec).to(device)
    D = build_discriminator(spec).to(device)
    channels_last = bool(cfg["channels_last"]) and len(spec.shape) == 3
    if channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    loss = build_loss(cfg["loss"])
    if state is not None:
        _check_compatible(state, spec)
    opt_g = build_optimizer(cfg["optim"]["g"], G.parameters(), "optim.g")
    opt_d = build_optimizer(cfg["optim"]["d"], D.parameters(), "optim.d")
    plan = schedule(cfg)
    if state is not None and state["step"] > plan.steps:
        s = state["step"]
        raise ConfigError(
            f"{state['path']} is at step {s}, past steps={plan.steps}, and a run "
            f"cannot be shortened; pass steps={s} (nothing to do) or more (continues it), "
            "or start a new run dir with hydra.run.dir=<dir>"
        )
    ema_cfg = cfg["ema"]
    ema = EMA(G, ema_cfg["decay"], ema_cfg["start"]) if ema_cfg["enabled"] else None
    world = rank.world_size
    for key, b in (("batch_size", plan.batch_size), ("g_batch_size", plan.g_batch_size)):
        if b % world:
            raise ConfigError(
                f"{key}={b} does not split over {world} ranks: it is the global batch, "
                f"each rank takes {key}/{world}; pass a multiple of {world}"
            )
    batches = BatchStream(
        dataset,
        plan.batch_size // world,
        seed=seed,
        num_workers=int(cfg["num_workers"]),
        rank=rank.rank,
        world_size=world,
        device=device,
    )
    precision = Precision(str(cfg["amp"]), device)
    G, G_step, _ = _wrap(G, "G", cfg, rank, device)
    D, D_step, D_penalty = _wrap(D, "D", cfg, rank, device)
    grid = cfg["grid"]
    run = Run(
        G=G,
        D=D,
        loss=loss,
        opt_g=opt_g,
        opt_d=opt_d,
        batches=batches,
        spec=spec,
        schedule=plan,
        # fixed noise depends on the seed alone, so runs that differ only in their
        # normalization show samples from the same latents
        fixed_noise=torch.randn(
            int(grid["n"]), spec.z_dim, generator=torch.Generator().manual_seed(seed)
        ),
        grid_nrow=int(grid["nrow"]),
        device=device,
        cfg=cfg,
        overrides=list(overrides),
        dataset=dataset,
        sched_g=_scheduler(opt_g, cfg, plan.steps),
        sched_d=_scheduler(opt_d, cfg, plan.steps),
        ema=ema,
        precision=precision,
        rank=rank,
        G_step=G_step,
        D_step=D_step,
        D_penalty=D_penalty,
        channels_last=channels_last,
        threads=threads,
    )
    if cfg["compile"]:
        _probe_compiled(run)
    if state is not None:
        restore(run, state, run_dir)
    run.hooks = list(hooks) + build_hooks(
        cfg, D=D, dataset=dataset, shape=spec.shape, z_dim=spec.z_dim, device=device
    )
    return run


def _resume_state(
    cfg: dict[str, Any], run_dir: Path, resume: str | Path | dict[str, Any] | None
) -> dict[str, Any] | None:
    """The checkpoint to continue from, loaded (once) and validated for resuming."""
    if isinstance(resume, dict):
        return resume
    resume = resume or cfg["resume"]
    if resume is None and (ckpt_io.checkpoint_dir(run_dir) / ckpt_io.LAST).is_file():
        resume = run_dir  # re-running into the same run dir continues it
    return ckpt_io.load_checkpoint(resume, resume=True) if resume else None


# torch 2.13 renamed DDP's broadcast_buffers to forward_sync_buffers (which, unlike the old
# flag set to False, still syncs buffers when DDP is built)
_NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers"
    in inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def _wrap(
    model: nn.Module, who: str, cfg: dict[str, Any], rank: Rank, device: torch.device
) -> tuple[nn.Module, Any, nn.Module]:
    """``model`` as the training steps call it -> (the plain model, SyncBN-converted when
    asked for; what the steps call; what the gradient penalty calls).

    Under torchrun a DDP wrapper (SyncBN first when asked for), then ``torch.compile`` when
    asked for.  No buffer sync at forward (``forward_sync_buffers=False``, torch 2.13's name
    for ``broadcast_buffers=False``): DDP's default re-broadcasts rank 0's buffers in place
    at every forward, and D is called on the real and the fake batch before one backward,
    so SN's u/v and BN's running statistics would be overwritten between the two calls --
    the in-place autograd error of pytorch#22095/#65907 (StudioGAN and MMGeneration turn it
    off too).  Buffers are still broadcast once at construction (the new flag keeps that;
    the old one skipped it).  Nothing is lost: parameters are identical on every rank after
    each all-reduced step and SN's u/v follow from them and their common start
    deterministically, and BN's running statistics are taken from rank 0 before every
    evaluation.  ``find_unused_parameters`` stays off: SN's and weight norm's
    parametrizations (``parametrizations.weight.original``) are used in every forward, so
    no parameter is ever unused (the ``weight_orig`` error of Lightning #20685 came from the
    old hook-based SN, which gansn does not use).
    """
    stepped: Any = model
    if rank.distributed:
        if cfg["distributed"]["sync_bn"]:
            if device.type != "cuda":
                raise ConfigError(
                    "distributed.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on "
                    "GPUs only); drop it on CPU"
                )
            model = stepped = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        stepped = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            **_NO_FORWARD_BUFFER_SYNC,
        )
    penalty = stepped
    if cfg["compile"]:
        stepped = Compiled(stepped, who)
    return model, stepped, penalty


class Compiled:
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


def _probe_compiled(run: Run) -> None:
    """compile=true: one pass of each training pattern through the compiled modules, on
    batches of the training size, in isolation (RNG, buffers and gradients restored).

    Compiling happens here rather than mid-step, and a compiled module that fails --
    at the call, or only in its backward pass, as SN's D does when it is called on the
    real and the fake batch before one backward -- is replaced by the eager module with
    one warning.
    """
    n = run.schedule.batch_size // run.rank.world_size
    shape = (n, *run.spec.shape)
    g_params = [p for p in run.G.parameters() if p.requires_grad]

    def d_pattern() -> None:
        x = torch.randn(shape, device=run.device)
        (run.D_step(x).sum() + run.D_step(x.flip(0)).sum()).backward()

    def g_pattern() -> None:
        z = torch.randn(n, run.spec.z_dim, device=run.device)
        run.D(run.G_step(z)).sum().backward(inputs=g_params)

    for wrapper, pattern in ((run.D_step, d_pattern), (run.G_step, g_pattern)):
        with isolated((run.G, run.D), run.device):
            try:
                with run.precision.autocast():
                    pattern()
            except Exception as err:
                wrapper.fail(err)
        for p in (*run.G.parameters(), *run.D.parameters()):
            p.grad = None


def _scheduler(
    opt: torch.optim.Optimizer, cfg: dict[str, Any], steps: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """``optim.lr_decay=linear``: to 0 at ``steps``; else None (the Run's constant rate)."""
    if cfg["optim"]["lr_decay"] != "linear":
        return None

    def factor(s: int) -> float:
        return max(0.0, 1.0 - s / steps)

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _check_compatible(state: dict[str, Any], spec: ModelSpec) -> None:
    saved = ModelSpec.from_dict(state["spec"])
    diffs = saved.differences(spec)
    if diffs:
        raise ConfigError(
            f"checkpoint {state['path']} was trained with a different model; it cannot "
            "be resumed with this config (checkpoint -> config): " + "; ".join(diffs)
        )


def restore(run: Run, s: dict[str, Any], run_dir: Path) -> None:
    """Put a loaded checkpoint ``s`` into ``run``'s objects: where training left off."""
    file = s["path"]
    models = s["models"]
    ckpt_io.load_module_state(run.G, models["G"], "models.G", file)
    ckpt_io.load_module_state(run.D, models["D"], "models.D", file)
    for who, opt in (("G", run.opt_g), ("D", run.opt_d)):
        ckpt_io.load_optimizer_state(opt, s["optim"].get(who), f"optim.{who}", file)
    if run.ema is not None:
        if "G_ema" in models:
            ckpt_io.load_module_state(run.ema.shadow, models["G_ema"], "models.G_ema", file)
        else:
            run.ema.copy_from(run.G)

    def ema_count() -> None:
        if run.ema is not None and "G_ema" in models:
            run.ema.num_updates = int(s["ema"]["num_updates"])

    def scheds() -> None:
        run.sched_g.load_state_dict(s["sched"]["G"])
        run.sched_d.load_state_dict(s["sched"]["D"])

    def scalers() -> None:
        # a run that changes amp on resume starts its loss scale afresh
        if s.get("scaler") and run.precision.mode == "fp16":
            run.scaler_g.load_state_dict(s["scaler"]["G"])
            run.scaler_d.load_state_dict(s["scaler"]["D"])

    # the rest is plain data; a damaged entry fails inside torch/numpy with a message
    # about their internals, so name the entry instead
    for part, restore_part in (
        ("ema", ema_count),
        ("sched", scheds),
        ("data", lambda: run.batches.load_state_dict(s["data"])),
        ("rng", lambda: set_rng_state(s["rng"])),
        ("scaler", scalers),
    ):
        try:
            restore_part()
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            raise ConfigError(
                f"{file} is damaged: its {part!r} state cannot be restored "
                f"({type(err).__name__}: {err})"
            ) from None
    run.fixed_noise = s["fixed_noise"]
    run.elapsed = float(s.get("elapsed", 0.0))
    run.hook_states.update(s.get("hooks") or {})
    run.best = dict(s.get("best") or {})
    run.step = int(s["step"])
    last = ckpt_io.checkpoint_dir(run_dir) / ckpt_io.LAST
    if Path(file).resolve() == last.resolve():
        run.saved_step = run.step
    log.info("resuming from %s at step %d", file, run.step)


def build_trainer(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | dict[str, Any] | None = None,
    hooks: Sequence[Hook] = (),
    rank: Rank | None = None,
    parallel_jobs: int | None = None,
) -> Trainer:
    """A :class:`Trainer` of :func:`build_run`'s run; nothing is written yet."""
    run = build_run(
        cfg,
        run_dir,
        overrides=overrides,
        resume=resume,
        hooks=hooks,
        rank=rank,
        parallel_jobs=parallel_jobs,
    )
    return Trainer(run, run_dir)


def train(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    overrides: Sequence[str] = (),
    resume: str | Path | None = None,
    hooks: Sequence[Hook] = (),
) -> Trainer:
    """Build the run and train it; returns the trained trainer (``.step``, ``.G``,
    ``.stopped_by``, ``.last_values``).

    What the tests call, as lightning-hydra-template's ``train(cfg)``.
    """
    trainer = build_trainer(cfg, run_dir, overrides=overrides, resume=resume, hooks=hooks)
    trainer.train()
    return trainer
