"""Per-step timing of ``Trainer.train()`` for the training benchmarks.

A ``train()`` call does a run's one-time work besides its steps: status.json, the TensorBoard
writer, and at the end one more pass of every hook (a Lipschitz measurement, an evaluation)
and the final sample grid. A call of zero steps returns at once ("nothing to do"), so it
cannot measure that work. Instead each timed block is an ``n + 1``-step call minus a 1-step
call: both pay the one-time work once, so their difference is ``n`` steps of the loop a long
run pays. Periodic hooks are kept out of the blocks (their ``every`` is 0) and timed apart,
per call, by :func:`hook_seconds`, so a hook's cost is stated per interval.
"""

from __future__ import annotations

import time

from gansn.training import Trainer


def _call(trainer: Trainer, steps: int) -> float:
    trainer.steps += steps
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def per_step(trainer: Trainer, n: int) -> tuple[float, float]:
    """Seconds per step of ``n`` steps, and the one-time work of a ``train()`` call.

    Runs ``n + 2`` steps in two calls; the one-time work is the 1-step call minus one step.
    """
    one = _call(trainer, 1)
    many = _call(trainer, n + 1)
    step = (many - one) / n
    return step, one - step


def hook_seconds(trainer: Trainer, hook) -> float:
    """Seconds of one call of ``hook`` on ``trainer`` at its current step, as the loop runs it."""
    t0 = time.perf_counter()
    with trainer.isolated():
        hook(trainer, trainer.step)
    return time.perf_counter() - t0
