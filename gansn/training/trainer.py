"""The GAN training loop: no Hydra here, so tests and notebooks call it directly.

    from gansn.training import train
    trainer = train(cfg_dict, run_dir="runs/x")       # the config's hooks, then training

``cfg`` is the plain-dict form of ``conf/train.yaml`` (see ``gansn.config.compose``).
Everything that can be wrong with it is checked in ``Trainer.__init__`` and
:func:`~gansn.training.hooks.build_hooks`, before anything is written; ``Trainer.train()``
is what writes into ``run_dir``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gansn import checkpoint as ckpt_io
from gansn import schema
from gansn.data import BatchStream, build_dataset
from gansn.errors import ConfigError, DataError
from gansn.lipschitz import layer_names
from gansn.lipschitz.operators import WEIGHTED
from gansn.losses import build_loss
from gansn.nn.archs import ModelSpec, build_discriminator, build_generator
from gansn.registry import check_options
from gansn.sampling import save_image, to_grid
from gansn.training.ema import EMA
from gansn.training.hooks import Hook, build_hooks
from gansn.training.logging import MetricsLog
from gansn.training.record import NonFiniteLossError, RunRecord
from gansn.training.tensorboard import RunWriter
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
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        run_dir: str | Path,
        *,
        overrides: list[str] = (),
        resume: str | Path | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        validate_config(cfg)
        import_modules(list(cfg.get("imports") or []))
        self.cfg, self.run_dir, self.overrides = cfg, Path(run_dir), list(overrides)
        check_writable(self.run_dir)
        resume = resume or cfg.get("resume")
        if resume is None and (ckpt_io.checkpoint_dir(self.run_dir) / ckpt_io.LAST).is_file():
            resume = self.run_dir  # re-running into the same run dir continues it
        resume_state = ckpt_io.load_checkpoint(resume, resume=True) if resume else None

        self.device = resolve_device(cfg.get("device", "auto"))
        if cfg.get("threads"):
            torch.set_num_threads(int(cfg["threads"]))
        seed = int(cfg["seed"])
        seed_everything(seed)

        self.dataset = build_dataset(cfg["dataset"])
        self.spec = model_spec(cfg, self.dataset.shape)
        # built before comparing with a checkpoint: a misspelled norm or arch name is then
        # reported as the unknown name it is, not as a difference from the saved model
        self.G = build_generator(self.spec).to(self.device)
        self.D = build_discriminator(self.spec).to(self.device)
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
        self.stream = BatchStream(
            self.dataset,
            self.batch_size,
            seed=seed,
            num_workers=int(cfg.get("num_workers", 0)),
            device=self.device,
        )
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
    def d_step(self) -> dict[str, torch.Tensor]:
        """One D update on a real batch and a fresh fake batch."""
        real, _ = self.stream.next_batch()
        z = torch.randn(self.batch_size, self.spec.z_dim, device=self.device)
        with torch.no_grad():
            fake = self.G(z)
        # separate calls, as the SNGAN code does: BatchNorm in D then normalizes real and
        # fake batches with their own statistics
        d_real, d_fake = self.D(real), self.D(fake)
        loss = self.loss.d_loss(d_real, d_fake)
        penalty = self.loss.penalty(self.D, real, fake)
        if penalty is not None:
            loss = loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {
            "loss/d": loss.detach(),
            "d/real": d_real.detach().mean(),
            "d/fake": d_fake.detach().mean(),
        }

    def g_step(self) -> dict[str, torch.Tensor]:
        """One G update on a fresh latent batch."""
        z = torch.randn(self.g_batch_size, self.spec.z_dim, device=self.device)
        loss = self.loss.g_loss(self.D(self.G(z)))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return {"loss/g": loss.detach()}

    def simultaneous_step(self) -> dict[str, torch.Tensor]:
        """One simultaneous D and G update from a single forward pass.

        Both losses are taken at the same (G, D) on the same fake batch; each side's
        gradient is its own loss's, then both optimizers step.  This is the update of the
        ALI/PacGAN code (``ali_algorithm``: one Theano function computing both gradients).
        """
        real, _ = self.stream.next_batch()
        z = torch.randn(self.batch_size, self.spec.z_dim, device=self.device)
        fake = self.G(z)
        d_real, d_fake = self.D(real), self.D(fake)
        d_loss = self.loss.d_loss(d_real, d_fake)
        penalty = self.loss.penalty(self.D, real, fake.detach())
        if penalty is not None:
            d_loss = d_loss + penalty
        g_loss = self.loss.g_loss(d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        # ``inputs=`` keeps each loss's gradient on its own side: D's loss does not reach
        # G's parameters and G's loss leaves no gradient in D
        d_loss.backward(inputs=self._d_params, retain_graph=True)
        g_loss.backward(inputs=self._g_params)
        self.opt_d.step()
        self.opt_g.step()
        return {
            "loss/d": d_loss.detach(),
            "d/real": d_real.detach().mean(),
            "d/fake": d_fake.detach().mean(),
            "loss/g": g_loss.detach(),
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
        with (
            RunRecord(self) as record,
            RunWriter(self.run_dir, purge_step=self.step or None) as writer,
        ):
            self.metrics.truncate_after(self.step)
            if self.step == 0:
                writer.config(self.cfg, self.spec)
                names = layer_names(self.D)
                writer.layout(
                    [n for p, n in names.items() if isinstance(self.D.get_submodule(p), WEIGHTED)]
                )
            log.info(
                "run dir %s; training %s G=%s D=%s for %d steps on %s",
                self.run_dir,
                self.spec.arch,
                self.spec.g_norm["name"],
                self.spec.d_norm["name"],
                self.steps,
                self.device,
            )
            log_every = int(self.cfg.get("log_every", 0))
            sums: dict[str, torch.Tensor] = {}
            n_sum, t_window = 0, time.perf_counter()
            while self.step < self.steps and self.stopped_by is None:
                t0 = time.perf_counter()
                out = self.train_step()
                self.elapsed += time.perf_counter() - t0
                _check_finite(out, self.step, self.checkpoint_note)
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
                log.warning(
                    "stopped by %s at step %d; checkpoint saved to %s; resume with resume=%s",
                    self.stopped_by,
                    self.step,
                    ckpt_io.checkpoint_dir(self.run_dir) / ckpt_io.LAST,
                    self.run_dir,
                )
            else:
                self._periodic(writer, final=True)
                writer.hparams(self.cfg, self.spec, self._last_values)
        return dict(self._last_values)

    def _window(self, sums: dict[str, torch.Tensor], n: int, seconds: float) -> dict[str, float]:
        """Means over the last ``n`` steps, learning rates and speed."""
        values = {k: float(v) / n for k, v in sums.items()}
        values["lr/g"] = self.opt_g.param_groups[0]["lr"]
        values["lr/d"] = self.opt_d.param_groups[0]["lr"]
        values["time/step_ms"] = 1000 * seconds / n
        values["time/images_per_s"] = self.batch_size * self.n_dis * n / seconds
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

        cfg = self.cfg
        for hook in self.hooks:
            if due(hook.name, hook.every):
                with self._isolated():
                    values = hook(self, self.step)
                self._emit(writer, values)
                self._track_best(values)
        if due("samples", int(cfg.get("sample_every", 0))) or final:
            self.write_samples(writer, final)
        if due("ckpt", int(cfg.get("ckpt_every", 0))):
            self.save()
        keep = int(cfg.get("keep_every", 0))
        if keep and self.step % keep == 0:
            self.save(f"step_{self.step:06d}.pt")

    def _emit(self, writer: Any, values: dict[str, float]) -> None:
        if not values:
            return
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
) -> Trainer:
    """A :class:`Trainer` for ``cfg`` with the hooks its config asks for (after ``hooks``).

    Everything is validated and built here and nothing is written, so a caller can still
    refuse (or write its own files) before ``trainer.train()``.
    """
    trainer = Trainer(cfg, run_dir, overrides=overrides, resume=resume, hooks=hooks)
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
