"""Benchmark: DDP ranks, torch.compile, channels-last and bf16 against the plain run.

Each variant is a real ``gansn-train`` run (``python -m gansn.train``; the DDP one under
``torchrun --standalone``) of the same DCGAN on synthetic 32x32 images; its speed is the
median of the ``time/step_ms`` windows in ``metrics.jsonl`` after the first two (start-up,
compilation).  Variants alternate in rounds so machine noise hits all of them; the table
gives each variant's median over rounds, the spread (min-max) over rounds, and the ratio of
medians to the baseline.

    python scripts/bench_scale.py [--rounds 3] [--steps 120] [--width 0.25] [--batch 64]
        [--variants base,threads2,ddp2,compile,channels_last,bf16,...]  (see VARIANTS)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from gansn.cli.args import ArgumentParser, comma_list, run_script, typed
from gansn.errors import ConfigError
from gansn.schema import Choice, Float, Int

# name -> (extra overrides, processes, threads per process, what it measures)
VARIANTS: dict[str, tuple[list[str], int, int, str]] = {
    "base": ([], 1, 1, "1 process, 1 thread"),
    "threads2": ([], 1, 2, "1 process, 2 threads"),
    "ddp2": ([], 2, 1, "torchrun: 2 ranks x 1 thread, gloo"),
    "compile": (["compile=true"], 1, 1, "1 process, 1 thread, compile=true"),
    "channels_last": (["channels_last=true"], 1, 1, "1 process, 1 thread, channels_last=true"),
    "bf16": (["amp=bf16"], 1, 1, "1 process, 1 thread, amp=bf16"),
    "threads2_bf16": (["amp=bf16"], 1, 2, "1 process, 2 threads, amp=bf16"),
    # an SN D falls back to eager under compile (docs/distributed.md): compile's full effect
    # needs a D without SN
    "base_dnone": (["norm@d_norm=none"], 1, 1, "1 process, 1 thread, D norm none"),
    "compile_dnone": (
        ["norm@d_norm=none", "compile=true"],
        1,
        1,
        "1 process, 1 thread, D norm none, compile=true",
    ),
}


def command(variant: str, run_dir: Path, steps: int, width: float, batch: int) -> list[str]:
    extra, procs, threads, _ = VARIANTS[variant]
    overrides = [
        "experiment=quick",
        f"model.width={width}",
        f"batch_size={batch}",
        f"steps={steps}",
        "log_every=10",
        "sample_every=0",
        "ckpt_every=0",
        "lipschitz_every=0",
        f"threads={threads}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
    if procs == 1:
        return [sys.executable, "-m", "gansn.train", *overrides]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "gansn.train",
        *overrides,
    ]


def step_ms(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    windows = [r["time/step_ms"] for r in rows if "time/step_ms" in r]
    if len(windows) < 4:
        raise ConfigError(f"{run_dir}: too few logged windows ({len(windows)}); raise --steps")
    return statistics.median(windows[2:])


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=typed(Int(1)), default=3)
    p.add_argument("--steps", type=typed(Int(40)), default=120)
    p.add_argument("--width", type=typed(Float(gt=0)), default=0.25)
    p.add_argument("--batch", type=typed(Int(2)), default=64)
    p.add_argument("--variants", type=comma_list(Choice(tuple(VARIANTS))), default=list(VARIANTS))
    args = p.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in args.variants:
                run_dir = Path(tmp) / f"{v}-{r}"
                cmd = command(v, run_dir, args.steps, args.width, args.batch)
                out = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if out.returncode != 0:
                    raise ConfigError(f"{v} failed: {out.stderr.strip().splitlines()[-1:]}")
                times[v].append(step_ms(run_dir))
                print(f"round {r} {v:14s} {times[v][-1]:8.1f} ms/step", file=sys.stderr)
    base = statistics.median(times[args.variants[0]])
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"DCGAN width {args.width}, global batch {args.batch}, {args.steps} steps, "
        f"{args.rounds} rounds"
    )
    print("| variant | ms / G step (median, min-max) | images/s | vs " + args.variants[0] + " |")
    print("|---|---|---|---|")
    for v in args.variants:
        med = statistics.median(times[v])
        print(
            f"| {VARIANTS[v][3]} | {med:.1f} ({min(times[v]):.1f}-{max(times[v]):.1f}) | "
            f"{args.batch / med * 1000:.0f} | {base / med:.2f}x |"
        )


if __name__ == "__main__":
    run_script(main, "bench_scale.py")
