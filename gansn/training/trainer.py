"""The GAN training loop over a built :class:`~gansn.training.run.Run`; no Hydra here.

    from gansn.training import Trainer, build_run
    trainer = Trainer(build_run(cfg, "runs/x"), "runs/x")
    trainer.train()

The run's objects are built elsewhere, once (:func:`gansn.training.build.build_run`, or by
hand: docs/python_api.md); the trainer only runs the loop: the steps, logging, periodic
hooks, sample grids and checkpoints, all written through the run's
:class:`~gansn.training.rundir.RunDir`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gansn import checkpoint as ckpt_io
from gansn import distributed
from gansn.errors import ConfigError, DataError
from gansn.sampling import to_grid
from gansn.training.hooks import Hook
from gansn.training.record import NonFiniteLossError, RankRecord, RunRecord
from gansn.training.run import Run, isolated
from gansn.training.rundir import RunDir
from gansn.training.tensorboard import Plan, build_plan
from gansn.utils import rng_state

log = logging.getLogger(__name__)


class Trainer:
    """Trains a :class:`~gansn.training.run.Run`'s G and D to ``steps`` G updates.

    Args:
        run: the built objects (models, optimizers, data, hooks, where a resume stands).
        run_dir: where checkpoints, TensorBoard events, samples and metrics go: a path, or
            a :class:`~gansn.training.rundir.RunDir` its caller opened (``gansn-train``
            holds it around writing its config files and training).  A trainer given a
            path opens the run dir (the lock, ``train.log``) for each ``train()`` call.
    """

    def __init__(self, run: Run, run_dir: str | Path | RunDir) -> None:
        self.files = (
            run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, writes=run.rank.is_main)
        )
        self.run_dir = self.files.path
        self.cfg, self.overrides, self.spec = run.cfg, run.overrides, run.spec
        self.dataset, self.threads = run.dataset, run.threads
        self.rank, self.device = run.rank, run.device
        self.G, self.D, self.loss, self.ema = run.G, run.D, run.loss, run.ema
        # what the training steps call: DDP and/or torch.compile wrappers of G and D, while
        # self.G/self.D stay the plain modules that checkpoints, EMA and hooks see
        self.G_step, self.D_step, self.D_penalty = run.G_step, run.D_step, run.D_penalty
        self.opt_g, self.opt_d = run.opt_g, run.opt_d
        self.sched_g, self.sched_d = run.sched_g, run.sched_d
        self.amp, self.scaler_g, self.scaler_d = run.precision, run.scaler_g, run.scaler_d
        self.stream, self.channels_last = run.batches, run.channels_last
        self.schedule = s = run.schedule
        self.steps, self.n_dis, self.update = s.steps, s.n_dis, s.update
        self.batch_size, self.g_batch_size = s.batch_size, s.g_batch_size
        self.fixed_noise, self.grid_nrow = run.fixed_noise, run.grid_nrow
        self.constant_lr = run.constant_lr
        self._g_params = [p for p in self.G.parameters() if p.requires_grad]
        self._d_params = [p for p in self.D.parameters() if p.requires_grad]
        self.step, self.elapsed = run.step, run.elapsed
        # the step checkpoints/last.pt holds, as far as this trainer knows (for messages)
        self.saved_step = run.saved_step
        self.stopped_by: str | None = None  # "SIGINT"/"SIGTERM" once a stop was requested
        self._last_values: dict[str, float] = {}
        self._ran_at: dict[str, int] = {}  # periodic job -> step it last ran at
        self._hook_states = dict(run.hook_states)  # saved states waiting for their hook
        self._resumed_best = dict(run.best)
        self.hooks: list[Hook] = []
        self.add_hooks(run.hooks)

    def add_hooks(self, hooks: Sequence[Hook]) -> None:
        """Run ``hooks`` too; a resumed run hands each its saved state (by ``name``), and
        the hook that keeps ``best.pt`` its best value so far."""
        for h in hooks:
            if h.name in self._hook_states:
                h.load_state_dict(self._hook_states.pop(h.name))
            if h.best_tag and self._resumed_best:
                h.best = dict(self._resumed_best)
            self.hooks.append(h)

    def request_stop(self, signal_name: str) -> bool:
        """Stop after the current step (and save); False when a stop was requested already."""
        first = self.stopped_by is None
        self.stopped_by = signal_name
        return first

    def isolated(self) -> AbstractContextManager[None]:
        """Run measurement code without touching training state: RNG forked, G's and D's
        modes and buffers (BN running stats, SN u/v) restored afterwards."""
        return isolated((self.G, self.D), self.device)

    # ------------------------------------------------------------- state I/O
    @property
    def best(self) -> dict[str, Any]:
        """{"tag", "value", "step"} of the best metric so far (the hook's that keeps it)."""
        keeper = next((h for h in self.hooks if h.best_tag), None)
        return dict(keeper.best) if keeper is not None else self._resumed_best

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

    def save(self, name: str = ckpt_io.LAST) -> Path:
        """Save the run as ``checkpoints/<name>`` (rank 0 writes it)."""
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
            return self.files.checkpoint_dir / name  # rank 0 writes it
        path = self.files.save_checkpoint(self.state_dict(), name)
        if name == ckpt_io.LAST:
            self.saved_step = self.step
        log.debug("saved %s", path)
        return path

    def checkpoint_note(self) -> str:
        """Which checkpoint this run leaves, in words: the truth for a stop message."""
        if not self.files.last.is_file():
            return "No checkpoint was saved, so there is nothing to resume from"
        at = "" if self.saved_step is None else f" (step {self.saved_step})"
        return f"The last good checkpoint, {self.files.last}{at}, is kept"

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
        penalty = self.loss.penalty(self.D_penalty, real, fake.float())
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
        penalty = self.loss.penalty(self.D_penalty, real, fake.detach().float())
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
            with nullcontext() if self.files.is_open else self.files:
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
            RunRecord(self, self.files) if main else RankRecord(self, self.files) as record,
            self.files.tensorboard(self.step or None, plan) as writer,
        ):
            self.files.truncate_metrics(self.step)
            if self.step == 0 and self.cfg:
                writer.config(self.cfg, self.spec)
            writer.layout(self.step, self.files.logged_tags() if main and self.step else ())
            log.info(
                "run dir %s; training %s G=%s D=%s for %d steps on %s",
                self.run_dir,
                self.spec.arch,
                self.spec.g_norm["name"],
                self.spec.d_norm["name"],
                self.steps,
                self.device,
            )
            if self.threads is not None:  # a run built by hand may not have chosen them
                log.info("%s", self.threads.describe())
            log_every = self.schedule.log_every
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
                    self._hparams(writer, finished=False)
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
                self._hparams(writer, finished=False)
                log.warning(
                    "stopped by %s at step %d; checkpoint saved to %s; resume with resume=%s",
                    self.stopped_by,
                    self.step,
                    self.files.last,
                    self.run_dir,
                )
            else:
                self._periodic(writer, final=True)
                self._hparams(writer, finished=True)
        return dict(self._last_values)

    def _hparams(self, writer: Any, finished: bool) -> None:
        """The run's HParams entry (a run built without a config has none)."""
        if self.cfg:
            writer.hparams(self.cfg, self.spec, finished=finished)

    def _plan(self) -> Plan:
        """What this run logs to TensorBoard (layout, HParams columns, text-only tags)."""
        return build_plan(self.D, self.hooks, constant_lr=self.constant_lr)

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

        main, every = self.rank.is_main, self.schedule
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
                    with self.isolated():
                        values = hook(self, self.step)
                except Exception as err:
                    self._save_after_failed(f"the {hook.name} hook", err)
                    raise
                self._emit(writer, values)
                hook.after(self, self.step, values)
        if (due("samples", every.sample_every) or final) and main:
            self.write_samples(writer, final)
        if due("ckpt", every.ckpt_every):
            self.save()
        keep = every.keep_every
        if keep and self.step % keep == 0:
            self.save(f"step_{self.step:06d}.pt")

    def _save_after_failed(self, what: str, err: Exception) -> None:
        """A measurement failed (an evaluation's bad input, a metric's bug): save what was
        trained before the error propagates, so no evaluation crash loses a training run;
        the error then says which checkpoint is kept."""
        if self.saved_step != self.step:
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
            self.files.append_metrics(self.step, self.elapsed, values)
        self._last_values.update({k: v for k, v in values.items() if isinstance(v, float)})

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
        return self.files.save_samples(grid, name)


def _check_finite(
    out: dict[str, torch.Tensor], step: int, checkpoint_note: Callable[[], str]
) -> None:
    for k, v in out.items():
        if not torch.isfinite(v).all():
            raise NonFiniteLossError(
                f"{k} is {float(v)} at G step {step}; training stopped. {checkpoint_note()}; "
                "lower the learning rate or try another normalization/loss"
            )
