"""Profile: where the quarter-width DCGAN's training step goes, op by op, against the
rate of the matrix products its convolutions amount to.

    python scripts/profile_step.py [--width 0.25] [--steps 10] [--threads 1]
        [--variants fp32,channels_last]

For each variant, one process builds the quickstart trainer (batch 64, SN D, BN G, hinge,
Adam, EMA; no metrics, samples, checkpoints or Lipschitz tracking in the loop) and measures:

* **FLOPs of one step**, counted by ``torch.utils.flop_counter.FlopCounterMode`` (forward and
  backward of every convolution and linear, D's and G's passes together);
* **the step time**, the median of ``--steps`` calls of ``train_step()`` after warm-up;
* **time by op**, from ``torch.profiler`` over the same number of steps: each aten op's self
  CPU time, grouped into the GEMM-type ops that carry the FLOPs (convolutions, transposed
  convolutions and their backward, mm/addmm) and the rest (batch norm, element-wise ops,
  optimizer, spectral norm's power iteration, memory-format copies, ...), grouped by op name:
  a heuristic, since an op that several parts use (``div``, ``add``) counts in the first
  group that names it;
* **the matching matrix-product rate**: each convolution call of a step is timed as the dense
  product it lowers to (im2col: M = batch x output positions, K = in-channels x kernel, N =
  out-channels; forward, and the two orientations of its backward), ``torch.mm`` in float32
  at the same thread count; the rate is their total FLOPs over their total time, so the
  target is the rate of the products this model really needs, not of one large square
  product (which is printed too).

The report states the step's rate (FLOPs / step time) as a fraction of the matching
product rate, and splits the gap into (a) the GEMM ops running below that rate and (b) the
time spent outside GEMM ops.  Needs idle cores: other load changes every figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from gansn.cli.args import ArgumentParser, comma_list, run_script, typed
from gansn.config import compose, to_plain
from gansn.schema import Float, Int, Str
from gansn.training import build_trainer

VARIANTS = {"fp32": [], "channels_last": ["channels_last=true"], "bf16": ["amp=bf16"]}

# Op-name fragments of the GEMM-type ops (the ones that carry the FLOPs).
GEMM = ("convolution", "conv2d", "conv_transpose", "mkldnn_conv", "addmm", "aten::mm", "bmm")
# Remaining ops, grouped by the first fragment their name contains (else "other").
GROUPS = {
    "batch norm": ("batch_norm",),
    "optimizer (Adam)": ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt"),
    "spectral norm (power iteration, normalize)": (
        "mv",
        "dot",
        "normalize",
        "linalg_vector_norm",
        "div",
    ),
    "layout copies / reshapes": ("copy_", "contiguous", "clone", "to_dense", "reorder", "_to_copy"),
    "activations and losses": (
        "relu",
        "leaky",
        "tanh",
        "sigmoid",
        "threshold",
        "hinge",
        "mean",
        "sum",
    ),
    "element-wise (add, mul, fill, ...)": ("add", "mul", "sub", "fill_", "zero_", "where", "neg"),
}


def group_of(name: str) -> str:
    low = name.lower()
    if any(g in low for g in GEMM):
        return "GEMM ops (conv, conv-transpose, mm: forward and backward)"
    for group, keys in GROUPS.items():
        if any(k in low for k in keys):
            return group
    return "other"


def make_trainer(width: float, threads: int, extra: list[str], tmp: str):
    cfg = to_plain(
        compose(
            [
                "experiment=quickstart",
                f"model.width={width}",
                "steps=1",
                "sample_every=0",
                "ckpt_every=0",
                "lipschitz_every=0",
                "log_every=0",
                "metrics=none",
                # the config decides the thread count (gansn's default would take every core)
                f"threads={threads}",
                *extra,
            ]
        )
    )
    return build_trainer(cfg, tmp)


def conv_products(trainer) -> list[tuple[int, int, int]]:
    """(M, K, N) of the dense products the convs of one step lower to.

    Records each Conv2d/ConvTranspose2d call of one step through forward hooks.  A conv's
    forward is the product (M x K) @ (K x N); its backward is the same FLOPs in two other
    orientations, input gradient (M x N) @ (N x K) and weight gradient (K x M) @ (M x N), so
    each call contributes all three.
    """
    shapes: list[tuple[int, int, int]] = []

    def hook(mod, inp, out):
        x = inp[0]
        kh, kw = mod.kernel_size
        if isinstance(mod, torch.nn.ConvTranspose2d):
            # the adjoint of a conv: input positions x in-channels times in x (out x kernel)
            m, k, n = (
                x.shape[0] * x.shape[2] * x.shape[3],
                mod.in_channels,
                mod.out_channels * kh * kw,
            )
        else:
            m = out.shape[0] * out.shape[2] * out.shape[3]
            k, n = mod.in_channels // mod.groups * kh * kw, mod.out_channels
        shapes.extend([(m, k, n), (m, n, k), (k, m, n)])

    handles = [
        mod.register_forward_hook(hook)
        for model in (trainer.G, trainer.D)
        for mod in model.modules()
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    trainer.train_step()
    for h in handles:
        h.remove()
    return shapes


def mm_seconds(m: int, k: int, n: int, repeats: int = 5) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return best


def measure(variant: str, width: float, steps: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(width, threads, VARIANTS[variant], tmp)
        for _ in range(3):  # warm-up: first-call allocations, oneDNN primitive caches
            trainer.train_step()
        with FlopCounterMode(display=False) as counter:
            trainer.train_step()
        flops = counter.get_total_flops()
        conv_fwd = sum(
            n
            for op, n in counter.get_flop_counts()["Global"].items()
            if op.__name__.split(".")[0] == "convolution"
        )
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - t0)
        step = statistics.median(times)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                trainer.train_step()
        by_group: dict[str, float] = defaultdict(float)
        by_op: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages():
            if ev.key.startswith("aten::") or "adam" in ev.key.lower():
                sec = ev.self_cpu_time_total / 1e6 / steps
                by_group[group_of(ev.key)] += sec
                by_op[ev.key] += sec
        shapes = conv_products(trainer)
    once = {shape: mm_seconds(*shape) for shape in set(shapes)}
    mm_rate = sum(2 * m * k * n for m, k, n in shapes) / sum(once[s] for s in shapes)
    im2col_fwd = sum(2 * m * k * n for m, k, n in shapes[::3])
    profiled = sum(by_group.values())
    gemm_key = next(g for g in by_group if g.startswith("GEMM"))
    gemm = by_group[gemm_key]
    print(
        f"\n== {variant}, {torch.get_num_threads()} thread(s): {steps} steps, median step "
        f"{step * 1e3:.1f} ms "
        f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); profiled aten self time "
        f"{profiled * 1e3:.1f} ms/step (the rest is Python and the profiler)"
    )
    print(f"FLOPs per step (FlopCounterMode, forward and backward): {flops / 1e9:.2f} GFLOP")
    print(
        f"conv forward FLOPs: FlopCounterMode {conv_fwd / 1e9:.3f} G, im2col shapes "
        f"{im2col_fwd / 1e9:.3f} G (the check that the shapes are the step's convs)"
    )
    print(
        f"matching product rate (torch.mm at the im2col shapes of the step's "
        f"{len(shapes) // 3} conv calls, forward and both backward orientations, best of 5 "
        f"each): {mm_rate / 1e9:.1f} GFLOP/s; the step's FLOPs at that rate: "
        f"{flops / mm_rate * 1e3:.1f} ms"
    )
    print(
        f"step rate: {flops / step / 1e9:.1f} GFLOP/s = {flops / step / mm_rate:.0%} of the "
        f"matching product rate"
    )
    print(
        f"GEMM ops: {gemm * 1e3:.1f} ms/step = {flops / gemm / 1e9:.1f} GFLOP/s = "
        f"{flops / gemm / mm_rate:.0%} of the matching rate; outside GEMM ops: "
        f"{(step - gemm) * 1e3:.1f} ms = {(step - gemm) / step:.0%} of the step"
    )
    print("| where the step goes | ms/step | % of step |")
    print("|---|---|---|")
    for group, sec in sorted(by_group.items(), key=lambda kv: -kv[1]):
        print(f"| {group} | {sec * 1e3:.1f} | {sec / step:.0%} |")
    print(
        f"| Python, dispatch, profiler (step - profiled) | {(step - profiled) * 1e3:.1f} | "
        f"{(step - profiled) / step:.0%} |"
    )
    print("top ops by self time:")
    for name, sec in sorted(by_op.items(), key=lambda kv: -kv[1])[:14]:
        print(f"  {name:<44} {sec * 1e3:7.2f} ms  {group_of(name)}")


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=typed(Float(gt=0)), default=0.25)
    ap.add_argument("--steps", type=typed(Int(2)), default=10, help="steps timed and profiled")
    ap.add_argument("--threads", type=typed(Int(1)), default=1)
    ap.add_argument("--variants", type=comma_list(Str()), default="fp32,channels_last")
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # a child's variant
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:  # the child process of one variant
        measure(args.variant, args.width, args.steps, args.threads)
        return
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(
                f"argument --variants: unknown variant {v!r}; choose from {', '.join(VARIANTS)}"
            )
    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} torch "
        f"thread(s), torch {torch.__version__}, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    big = 1024
    print(
        f"square fp32 product {big}^3, best of 5: "
        f"{2 * big**3 / mm_seconds(big, big, big) / 1e9:.1f} GFLOP/s"
    )
    for v in args.variants:  # a fresh process each: oneDNN caches and allocator state apart
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                v,
                "--width",
                str(args.width),
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ],
            check=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    run_script(main, "profile_step")
