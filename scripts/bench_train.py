"""Benchmark: gansn's training loop vs a minimal hand-written PyTorch loop.

Same models (built from the same spec and seed), same batch, same optimizer and loss; the
gansn side runs ``Trainer.train()`` with metrics, samples and checkpoints off (logging at
its default interval stays on), the plain side is the textbook loop below.  Runs alternate
in blocks so machine noise hits both; prints per-step times and the ratio.

    python scripts/bench_train.py [--steps 50] [--repeats 12] [--width 0.25] [--lipschitz 200]

Third column: the same gansn loop with Lipschitz tracking at its default interval (every 200
G steps: per-layer power iterations plus gradient-norm lower bounds on 32 images).  Blocks are
short and many, each pair's ratio is kept, and the quartiles are printed: quote a ratio only
where its spread is smaller than the effect.  Each ``train()`` call's one-time work is
measured by a call of zero steps and subtracted.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from gansn.cli.args import ArgumentParser, comma_list, run_script, typed
from gansn.config import compose, to_plain
from gansn.errors import did_you_mean
from gansn.nn import NORMS
from gansn.schema import Float, Int, Str
from gansn.training import Trainer, build_trainer


def plain_loop(trainer: Trainer, steps: int) -> float:
    """The textbook SNGAN step on the trainer's own models, data and optimizers."""
    G, D, opt_g, opt_d = trainer.G, trainer.D, trainer.opt_g, trainer.opt_d
    data, bs, z_dim = trainer.dataset, trainer.batch_size, trainer.spec.z_dim
    perm = torch.randperm(len(data))
    t0 = time.perf_counter()
    for i in range(steps):
        G.train()
        D.train()
        real, _ = data.get_batch(perm[(i * bs) % (len(data) - bs) :][:bs])
        with torch.no_grad():
            fake = G(torch.randn(bs, z_dim))
        loss_d = F.relu(1 - D(real)).mean() + F.relu(1 + D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = -D(G(torch.randn(bs, z_dim))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return time.perf_counter() - t0


def gansn_loop(trainer: Trainer, steps: int) -> float:
    trainer.steps += steps
    t0 = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t0


def make_trainer(norm: str, width: float, lipschitz_every: int, tmp: str) -> Trainer:
    cfg = to_plain(
        compose(
            [
                "experiment=quickstart",
                f"norm@d_norm={norm}",
                f"model.width={width}",
                "steps=1",
                "sample_every=0",
                "ckpt_every=0",
                "ema.enabled=false",
                "log_every=25",
                f"lipschitz_every={lipschitz_every}",
                "metrics=none",
            ]
        )
    )
    trainer = build_trainer(cfg, tmp)
    trainer.steps = 0  # each timed block adds its own steps
    for _ in range(2):  # warm-up: first-call allocations; does not advance `step`
        trainer.train_step()
    trainer.step = 0
    return trainer


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=typed(Int(1)), default=50, help="G steps per timed block")
    ap.add_argument(
        "--repeats", type=typed(Int(2)), default=12, help="alternating triples of blocks"
    )
    ap.add_argument("--width", type=typed(Float(gt=0)), default=0.25)
    ap.add_argument(
        "--lipschitz",
        type=typed(Int(1)),
        default=200,
        help="lipschitz_every of the third column (the default interval)",
    )
    ap.add_argument("--norms", type=comma_list(Str()), default="none,spectral")
    args = ap.parse_args()
    for norm in args.norms:
        if norm not in NORMS:
            ap.error(
                f"argument --norms: unknown normalization {norm!r}"
                f"{did_you_mean(norm, NORMS.names())}"
            )
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"DCGAN width {args.width}, Fashion-MNIST 32x32, batch 64, n_dis 1, hinge, Adam; "
        f"{args.repeats} x (plain, gansn, gansn+lipschitz) blocks of {args.steps} steps; "
        f"lipschitz_every={args.lipschitz}; per-block ratios: median [quartiles]"
    )
    for norm in args.norms:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            ours = make_trainer(norm, args.width, 0, a)
            tracked = make_trainer(norm, args.width, args.lipschitz, b)
            plain_loop(ours, 2)
            per_step: dict[str, list[float]] = {"plain": [], "gansn": [], "lip": []}
            for _ in range(args.repeats):  # short alternating blocks: noise hits all three
                p = plain_loop(ours, args.steps) / args.steps
                # a train() call's one-time work (status, writer, final grid) is not per-step
                g = (gansn_loop(ours, args.steps) - gansn_loop(ours, 0)) / args.steps
                lip = (gansn_loop(tracked, args.steps) - gansn_loop(tracked, 0)) / args.steps
                per_step["plain"].append(p)
                per_step["gansn"].append(g)
                per_step["lip"].append(lip)
            # the tracker runs once per `lipschitz` steps: its share of a block is measured as
            # (lip - gansn) per step; compare it with the spread of gansn/plain itself
            ratio = [g / p for g, p in zip(per_step["gansn"], per_step["plain"])]
            over = [lp / g - 1 for lp, g in zip(per_step["lip"], per_step["gansn"])]
            med = {k: statistics.median(v) for k, v in per_step.items()}
            rq, oq = statistics.quantiles(ratio, n=4), statistics.quantiles(over, n=4)
            print(
                f"{norm:<9} plain {1000 * med['plain']:.1f} ms/step, gansn "
                f"{1000 * med['gansn']:.1f}; gansn/plain {statistics.median(ratio):.3f} "
                f"[{rq[0]:.3f}, {rq[2]:.3f}]; Lipschitz tracking "
                f"{100 * statistics.median(over):+.1f} % [{100 * oq[0]:+.1f}, {100 * oq[2]:+.1f}]"
            )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    run_script(main, "bench_train")
