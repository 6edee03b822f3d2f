"""Benchmark: the training step with denormal floats flushed to zero vs kept (CPU).

A D that saturates fills activations and gradients with denormal floats (|x| < 1.2e-38),
which x86 CPUs process on a slow path.  This trains one run into that regime (SNGAN setting F
on the Fashion-MNIST study's quarter-width DCGAN by default), then times blocks of G steps
with ``torch.set_flush_denormal`` off and on, alternating on the same model state so that
both see the same regime, and prints seconds per step and their ratio per pair of blocks.

    python scripts/bench_denormal.py [--setting F] [--norm none] [--warm 110] [--rounds 2]
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time

import torch

from gansn.cli.args import ArgumentParser, run_script, typed
from gansn.config import compose, to_plain
from gansn.schema import Int, Str
from gansn.training import build_trainer


def _block(trainer, steps: int, flush: bool) -> float:
    torch.set_flush_denormal(flush)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
        trainer.step += 1
    return (time.perf_counter() - t0) / steps


def main() -> int:
    p = ArgumentParser(prog="bench_denormal", description=__doc__.splitlines()[0])
    p.add_argument("--setting", type=typed(Str()), default="F", help="SNGAN setting A-F")
    p.add_argument("--norm", type=typed(Str()), default="none", help="D normalization")
    p.add_argument("--warm", type=typed(Int(0)), default=110, help="G steps before timing")
    p.add_argument("--steps", type=typed(Int(1)), default=8, help="G steps per timed block")
    p.add_argument("--rounds", type=typed(Int(1)), default=2, help="off/on block pairs")
    a = p.parse_args()
    cfg = to_plain(
        compose(
            [
                "experiment=norm_study_fmnist",
                f"setting={a.setting}",
                f"norm@d_norm={a.norm}",
                "metrics=none",
                "lipschitz_every=0",
                "threads=1",
                "steps=1000000",
            ]
        )
    )
    trainer = build_trainer(cfg, tempfile.mkdtemp(prefix="bench_denormal_"))
    t0 = time.perf_counter()
    for _ in range(a.warm):  # into the saturated regime (flushed: the faster way there)
        trainer.train_step()
        trainer.step += 1
    losses = {k: round(float(v), 3) for k, v in trainer.train_step().items()}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"warm-up {a.warm} G steps in {time.perf_counter() - t0:.0f} s; losses then {losses}")
    ratios = []
    for r in range(a.rounds):
        off, on = _block(trainer, a.steps, False), _block(trainer, a.steps, True)
        ratios.append(off / on)
        print(f"round {r}: kept {off:.3f} s/step, flushed {on:.3f} s/step, ratio {off / on:.2f}")
    print(f"median ratio kept/flushed: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    run_script(main, "bench_denormal")
