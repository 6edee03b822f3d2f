"""Train several seeds of one config in one process, stacked, each as an ordinary run.

    from gansn.training.multiseed import train_seeds
    results = train_seeds(cfgs, run_dirs, overrides)     # one config per seed (no Hydra)

Every seed's run is the :class:`~gansn.training.Trainer` its single-seed ``gansn-train``
would build, and its own ``Trainer.train()`` runs its loop (logging, evaluation hooks,
samples, checkpoints, status, TensorBoard), each in a thread of its own.  Only the training
step is shared: each trainer's ``train_step`` is replaced by a rendezvous, and once every
seed has arrived one :class:`~gansn.training.stacked.StackedStep` updates them all.

The threads take turns: a thread runs its own code only while it holds the *floor* (one
lock), and with the floor it gets its seed's global RNG states (torch, numpy, Python), so a
seed's evaluation draws, its checkpoint's RNG record and its training latents are those of
its single-seed run.  Models and optimizer states are copied from the stacked tensors into
a seed's own modules only at steps where its loop reads them (an evaluation, a sample grid,
a checkpoint, the end).  Outputs per seed are those of an ordinary run: ``gansn-train
resume=<run dir>`` continues one seed alone, ``gansn-sample`` and the reports read it.

The ``time/*`` scalars of a stacked run measure the stacked step (all seeds' update), and a
run's ``elapsed`` the wall time its loop waited for it.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gansn.errors import ConfigError
from gansn.training.build import build_trainer
from gansn.training.stacked import StackedStep, check_supported, generator_from_global
from gansn.training.trainer import Trainer

log = logging.getLogger(__name__)


class _Coordinator:
    """The floor, the per-seed RNG states and the rendezvous of S trainers' steps."""

    def __init__(self, trainers: list[Trainer], rng: list[tuple]) -> None:
        self.trainers = trainers
        self.rng = rng  # per seed: (torch, numpy, python) global RNG states
        self.generators = [generator_from_global() for _ in trainers]
        for g, (state, _, _) in zip(self.generators, rng):
            g.set_state(state)
        # built here, before any thread writes: a layer that cannot be stacked is refused
        # while the run dirs are untouched
        self.stacked = StackedStep(trainers, self.generators)
        self.floor = threading.Lock()
        self.cond = threading.Condition()
        self.active = set(range(len(trainers)))
        self.arrived: set[int] = set()
        self.generation = 0
        self.outs: list[dict[str, torch.Tensor]] = []
        self.error: BaseException | None = None
        self.stop: str | None = None  # a signal's name once one asked all seeds to stop
        self._filtered: set[int] = set()

    # -------------------------------------------------------------- the floor
    def enter(self, k: int) -> None:
        """Take the floor as seed ``k``: its global RNG states are installed."""
        self.floor.acquire()
        torch_state, np_state, py_state = self.rng[k]
        torch.set_rng_state(torch_state)
        np.random.set_state(np_state)
        random.setstate(py_state)

    def exit(self, k: int) -> None:
        """Hand the floor on, keeping seed ``k``'s global RNG states."""
        self.rng[k] = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        self.floor.release()

    # ----------------------------------------------------------- rendezvous
    def train_step(self, k: int) -> dict[str, torch.Tensor]:
        """Seed ``k``'s ``Trainer.train_step``: wait for the others, then one stacked step."""
        self._own_log_only(k)
        # the latents continue from the RNG state the seed's own code left
        self.generators[k].set_state(torch.get_rng_state())
        self.exit(k)
        with self.cond:
            generation = self.generation
            self.arrived.add(k)
            if self.arrived >= self.active:
                self._run()
            else:
                while self.generation == generation:
                    self.cond.wait()
        self.enter(k)
        if self.error is not None:
            raise self.error
        torch.set_rng_state(self.generators[k].get_state())
        return self.outs[k]

    def leave(self, k: int) -> None:
        """Seed ``k``'s loop has ended (done, stopped or failed): step without it."""
        with self.cond:
            self.active.discard(k)
            if self.arrived and self.arrived >= self.active:
                self._run()

    def _run(self) -> None:
        """The stacked step, by the last thread to arrive (the others wait on ``cond``)."""
        try:
            self.outs = self.stacked.step()
            if self.stop is not None:
                for t in self.trainers:  # all seeds stop after the same step
                    if t.stopped_by is None:
                        t.request_stop(self.stop)
            for k in self.arrived:
                if _reads_models(self.trainers[k]):
                    self.stacked.write_back(k)
        except BaseException as err:
            self.error = err
        self.arrived = set()
        self.generation += 1
        self.cond.notify_all()

    def _own_log_only(self, k: int) -> None:
        """Seed ``k``'s ``train.log`` takes only seed ``k``'s records (all threads log to the
        root logger, where every run's file handler is attached)."""
        if k in self._filtered:
            return
        self._filtered.add(k)
        ident = threading.get_ident()
        self.trainers[k].files.filter_log(lambda record: record.thread == ident)


def _reads_models(t: Trainer) -> bool:
    """Whether ``t``'s loop reads its models or optimizers after the step it just took:
    the periodic work of ``Trainer._periodic`` (hooks, samples, checkpoints) and the end."""
    n, s = t.step, t.schedule
    if n >= t.steps or t.stopped_by is not None:
        return True
    every = [h.every for h in t.hooks]
    every += [s.sample_every, s.ckpt_every, s.keep_every]
    return any(e > 0 and n % e == 0 for e in every)


def build_seeds(
    cfgs: Sequence[dict[str, Any]],
    run_dirs: Sequence[str | Path],
    overrides: Sequence[Sequence[str]],
) -> tuple[list[Trainer], list[tuple]]:
    """The seeds' trainers, built one after the other as their runs would be, and each
    run's global RNG states as its construction left them (where its training begins)."""
    for cfg in cfgs:
        check_supported(cfg)
    trainers, rng = [], []
    for cfg, run_dir, ov in zip(cfgs, run_dirs, overrides):
        trainers.append(build_trainer(cfg, run_dir, overrides=list(ov)))
        rng.append((torch.get_rng_state(), np.random.get_state(), random.getstate()))
    if len({(t.step, t.steps) for t in trainers}) != 1:
        raise ConfigError(
            "the seeds' runs are at different steps ("
            + ", ".join(f"{t.run_dir}: {t.step} of {t.steps}" for t in trainers)
            + "); train or resume them apart with gansn-train"
        )
    return trainers, rng


def train_seeds(
    trainers: list[Trainer],
    rng: list[tuple],
    run: Callable[[Trainer], dict[str, float]] = Trainer.train,
) -> list[dict[str, float] | BaseException]:
    """Train the seeds of :func:`build_seeds` stacked; ``run(trainer)`` is what each seed's
    thread does (``Trainer.train``, or the CLI's lock-write-train); returns each seed's
    final values, or the exception that ended it.

    SIGINT/SIGTERM (from the main thread) stop every seed after the same step; each saves.
    """
    coord = _Coordinator(trainers, rng)
    results: list[Any] = [None] * len(trainers)

    def body(k: int) -> None:
        t = trainers[k]
        t.train_step = lambda: coord.train_step(k)  # the loop's step, now a rendezvous
        coord.enter(k)
        try:
            results[k] = run(t)
        except BaseException as err:
            results[k] = err
        finally:
            coord.exit(k)
            coord.leave(k)

    threads = [
        threading.Thread(target=body, args=(k,), name=f"seed-{k}", daemon=True)
        for k in range(len(trainers))
    ]
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if coord.stop is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            coord.stop = name
            log.warning("%s received: all seeds stop after this step (Ctrl-C again to abort)", name)

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for th in threads:
            th.start()
        for th in threads:
            while th.is_alive():
                th.join(0.5)  # a timeout, so the main thread handles signals meanwhile
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return results
