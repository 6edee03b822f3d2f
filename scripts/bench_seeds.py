"""Benchmark: seeds of PacGAN's MLP pair trained one per process vs stacked in one process.

The plain side is ``Trainer.train_step()`` of ``experiment=pacgan_grid25`` (the loop's
step, as one ``gansn-train`` run pays it); "plain, maxout*" is the same step with the
stacked step's maxout backward (amax's gradient without counting ties where there are none),
to separate that gain from batching's; the stacked side is
:class:`gansn.training.stacked.StackedStep` over ``S`` seeds' trainers, one update of all
``S`` seeds per call.  Short blocks alternate (plain, stacked S=..., plain, ...) so machine
noise hits every variant; each block's cost is stated per seed-update, in wall time and in
the process's CPU time (on a loaded machine the CPU time is the steadier of the two: it
does not count the time other processes held the core).  One torch thread, as the presets.

    python scripts/bench_seeds.py [--seeds 2 5] [--steps 50] [--pairs 6]
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time

import torch

from gansn.cli.args import ArgumentParser, run_script, typed
from gansn.config import compose, to_plain
from gansn.nn.layers import Maxout
from gansn.schema import Int
from gansn.training import Trainer, build_trainer
from gansn.training.stacked import StackedStep, _Amax


def make_trainer(seed: int, tmp: str, experiment: str) -> Trainer:
    cfg = to_plain(
        compose(
            [
                f"experiment={experiment}",
                f"seed={seed}",
                "steps=1000000",
                "metrics=none",
                "lipschitz_every=0",
                "sample_every=0",
                "ckpt_every=0",
                "threads=1",
            ]
        )
    )
    return build_trainer(cfg, f"{tmp}/s{seed}")


def _amax_maxout(pieces: int):
    """``Maxout(pieces).forward`` with :class:`gansn.training.stacked._Amax`'s backward."""
    return lambda x: _Amax.apply(x.unflatten(-1, (-1, pieces)), x.dim())


def block(fn, n: int, per: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per seed-update of ``n`` calls updating ``per`` seeds each."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (
        1000 * (time.perf_counter() - w0) / (n * per),
        1000 * (time.process_time() - c0) / (n * per),
    )


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seeds", type=typed(Int(1)), nargs="+", default=[5], help="stacked sizes S to time"
    )
    ap.add_argument("--steps", type=typed(Int(1)), default=50, help="updates per timed block")
    ap.add_argument("--pairs", type=typed(Int(1)), default=6, help="rounds of alternating blocks")
    ap.add_argument("--experiment", default="pacgan_grid25", help="an MLP preset")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
        f"average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; 1 torch thread, torch "
        f"{torch.__version__}; {args.experiment}; {args.pairs} rounds of {args.steps}-update "
        "blocks"
    )
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_trainer(1000, tmp, args.experiment)
        variants: dict[str, tuple] = {"plain": (plain.train_step, 1)}
        # a control: the plain step with the stacked step's maxout backward (the one
        # arithmetic difference besides batching), to tell the two gains apart
        control = make_trainer(1001, tmp, args.experiment)
        for m in control.D.modules():
            if isinstance(m, Maxout):
                m.forward = _amax_maxout(m.pieces)
        variants["plain, maxout*"] = (control.train_step, 1)
        for S in args.seeds:
            ts = [make_trainer(100 * S + s, tmp, args.experiment) for s in range(S)]
            gens = [torch.Generator().manual_seed(s) for s in range(S)]
            variants[f"stacked S={S}"] = (StackedStep(ts, gens).step, S)
        for fn, _ in variants.values():  # warm-up: first-call allocations, Adam state
            for _ in range(3):
                fn()
        wall: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.pairs):
            for name, (fn, per) in variants.items():
                w, c = block(fn, args.steps, per)
                wall[name].append(w)
                cpu[name].append(c)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    for name in variants:
        rw = [p / v for p, v in zip(wall["plain"], wall[name])]
        rc = [p / v for p, v in zip(cpu["plain"], cpu[name])]
        print(
            f"{name:>14}: {statistics.median(wall[name]):6.2f} ms wall, "
            f"{statistics.median(cpu[name]):6.2f} ms CPU per seed-update; speed-up over plain "
            f"per round: wall median {statistics.median(rw):.2f} ({min(rw):.2f}-{max(rw):.2f}), "
            f"CPU median {statistics.median(rc):.2f} ({min(rc):.2f}-{max(rc):.2f})"
        )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    run_script(main, "bench_seeds")
