"""Benchmark: gansn's training loop vs a minimal hand-written PyTorch loop.

Same models (built from the same spec and seed), same batch, same optimizer and loss; the
gansn side runs ``Trainer.train()`` with metrics, samples and checkpoints off (logging at
its default interval stays on), the plain side is the textbook loop below.  Runs alternate
in blocks so machine noise hits both; prints per-step times and the ratio.

    python scripts/bench_train.py [--steps 50] [--repeats 12] [--width 0.25] [--lipschitz 200]

Each gansn block is an ``n + 1``-step ``train()`` call minus a 1-step call, so a call's
one-time work (status.json, the TensorBoard writer, the end-of-run hooks and sample grid) is
subtracted (see ``scripts/_timing.py``).  Lipschitz tracking (per-layer power iterations plus
gradient-norm lower bounds on 32 images) is timed apart, one call per block, and stated as
its cost per interval: one call / (``--lipschitz`` gansn steps).  Blocks are short and many,
each block's ratio is kept, and the quartiles are printed: quote a ratio only where its
spread is smaller than the effect.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _timing import hook_seconds, per_step

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


def make_trainer(norm: str, width: float, lipschitz_every: int, tmp: str) -> tuple[Trainer, object]:
    """A quickstart trainer without periodic work in its loop, and its Lipschitz hook."""
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
    (hook,) = [h for h in trainer.hooks if h.name == "lipschitz"]
    trainer.hooks.remove(hook)  # timed apart, per call
    trainer.steps = 0  # each timed block adds its own steps
    for _ in range(2):  # warm-up: first-call allocations; does not advance `step`
        trainer.train_step()
    trainer.step = 0
    return trainer, hook


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=typed(Int(1)), default=50, help="G steps per timed block")
    ap.add_argument(
        "--repeats", type=typed(Int(2)), default=12, help="alternating (plain, gansn) block pairs"
    )
    ap.add_argument("--width", type=typed(Float(gt=0)), default=0.25)
    ap.add_argument(
        "--lipschitz",
        type=typed(Int(1)),
        default=200,
        help="the tracking interval its cost is stated for (the default: lipschitz_every)",
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
        f"{args.repeats} x (plain, gansn) blocks of {args.steps} steps and one Lipschitz call; "
        f"per-block ratios: median [quartiles]"
    )
    for norm in args.norms:
        with tempfile.TemporaryDirectory() as tmp:
            trainer, hook = make_trainer(norm, args.width, args.lipschitz, tmp)
            plain_loop(trainer, 2)
            hook_seconds(trainer, hook)  # warm-up
            rows: dict[str, list[float]] = {"plain": [], "gansn": [], "once": [], "lip": []}
            for _ in range(args.repeats):  # short alternating blocks: noise hits all three
                rows["plain"].append(plain_loop(trainer, args.steps) / args.steps)
                step, once = per_step(trainer, args.steps)
                rows["gansn"].append(step)
                rows["once"].append(once)
                rows["lip"].append(hook_seconds(trainer, hook))
            ratio = [g / p for g, p in zip(rows["gansn"], rows["plain"])]
            # the tracker runs once per `lipschitz` steps: one call over that many steps
            over = [c / (args.lipschitz * g) for c, g in zip(rows["lip"], rows["gansn"])]
            med = {k: statistics.median(v) for k, v in rows.items()}
            rq, oq = statistics.quantiles(ratio, n=4), statistics.quantiles(over, n=4)
            print(
                f"{norm:<9} plain {1000 * med['plain']:.1f} ms/step, gansn "
                f"{1000 * med['gansn']:.1f}; gansn/plain {statistics.median(ratio):.3f} "
                f"[{rq[0]:.3f}, {rq[2]:.3f}]; one Lipschitz call {1000 * med['lip']:.0f} ms = "
                f"{100 * statistics.median(over):+.2f} % [{100 * oq[0]:+.2f}, "
                f"{100 * oq[2]:+.2f}] at every {args.lipschitz} steps; one-time work per "
                f"train() call {1000 * med['once']:.0f} ms"
            )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    run_script(main, "bench_train")
