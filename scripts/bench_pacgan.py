"""Benchmark: gansn's step on PacGAN's MLP pair vs a hand-written PyTorch loop.

Both sides train the same G and D (4 x 400 BN-ReLU G, 3-layer maxout D, batch 100,
simultaneous updates, fused Adam, one thread): the plain side is the loop below, the gansn
side ``Trainer.train()`` of ``experiment=pacgan_ring8`` with evaluation, Lipschitz tracking,
samples and checkpoints off and scalars logged every ``--log-every`` steps.  Short blocks
alternate (plain, gansn, plain, ...) so machine noise hits both; the per-pair ratios give
the spread, and a ratio is worth quoting only where its spread is smaller than the effect.
Each gansn block is an ``n + 1``-update ``train()`` call minus a 1-update call, so a call's
one-time work (status.json, the TensorBoard writer, the final sample image) is subtracted
(see ``scripts/_timing.py``) and the ratio is the per-update cost of the loop a long run
pays.

    python scripts/bench_pacgan.py [--steps 100] [--pairs 20] [--norm none]
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _timing import per_step

from gansn.cli.args import ArgumentParser, run_script, typed
from gansn.config import compose, to_plain
from gansn.errors import did_you_mean
from gansn.nn import NORMS
from gansn.schema import Int
from gansn.training import Trainer, build_trainer


def plain_loop(trainer: Trainer, steps: int, perm: torch.Tensor, start: int) -> float:
    """PacGAN's update (both gradients from one forward, both Adam steps), written plainly."""
    G, D, opt_g, opt_d = trainer.G, trainer.D, trainer.opt_g, trainer.opt_d
    data, bs, z_dim = trainer.dataset, trainer.batch_size, trainer.spec.z_dim
    g_params, d_params = list(G.parameters()), list(D.parameters())
    t0 = time.perf_counter()
    for i in range(start, start + steps):
        G.train()
        D.train()
        j = (i * bs) % (len(data) - bs)
        real, _ = data.get_batch(perm[j : j + bs])
        fake = G(torch.randn(bs, z_dim))
        d_real, d_fake = D(real), D(fake)
        loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        loss_g = F.softplus(-d_fake).mean()
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        loss_d.backward(inputs=d_params, retain_graph=True)
        loss_g.backward(inputs=g_params)
        opt_d.step()
        opt_g.step()
    return time.perf_counter() - t0


def make_trainer(norm: str, log_every: int, tmp: str) -> Trainer:
    cfg = to_plain(
        compose(
            [
                "experiment=pacgan_ring8",
                f"norm@d_norm={norm}",
                "steps=1",
                "sample_every=0",
                "ckpt_every=0",
                "lipschitz_every=0",
                "metrics=none",
                f"log_every={log_every}",
            ]
        )
    )
    trainer = build_trainer(cfg, tmp)
    trainer.steps = 0
    for _ in range(5):  # warm-up: first-call allocations, fused-Adam state
        trainer.train_step()
    trainer.step = 0
    return trainer


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=typed(Int(1)), default=100, help="updates per timed block")
    ap.add_argument(
        "--pairs", type=typed(Int(1)), default=20, help="alternating (plain, gansn) pairs"
    )
    ap.add_argument("--norm", default="none", help="D normalization")
    ap.add_argument("--log-every", type=typed(Int(1)), default=1000, help="gansn's scalar interval")
    args = ap.parse_args()
    if args.norm not in NORMS:
        ap.error(
            f"argument --norm: unknown normalization {args.norm!r}"
            f"{did_you_mean(args.norm, NORMS.names())}"
        )
    torch.set_num_threads(1)
    print(
        f"machine: {platform.processor() or platform.machine()}, 1 torch thread, "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )
    print(
        f"PacGAN MLP pair, D norm {args.norm}, batch 100, simultaneous updates, fused Adam; "
        f"{args.pairs} pairs of {args.steps}-update blocks; gansn logs every {args.log_every}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args.norm, args.log_every, tmp)
        perm = torch.randperm(len(trainer.dataset))
        plain_loop(trainer, 5, perm, 0)
        plain, ours, ratios, fixed = [], [], [], []
        for k in range(args.pairs):
            p = plain_loop(trainer, args.steps, perm, k * (args.steps + 2)) / args.steps
            g, f = per_step(trainer, args.steps)
            fixed.append(f)
            plain.append(p)
            ours.append(g)
            ratios.append(g / p)
    q = statistics.quantiles(ratios, n=4)
    print(
        f"plain {1000 * statistics.median(plain):.2f} ms/update, gansn "
        f"{1000 * statistics.median(ours):.2f} ms/update; gansn/plain per pair: median "
        f"{statistics.median(ratios):.3f}, quartiles {q[0]:.3f}-{q[2]:.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}; one-time work per train() call "
        f"{1000 * statistics.median(fixed):.0f} ms"
    )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    run_script(main, "bench_pacgan")
