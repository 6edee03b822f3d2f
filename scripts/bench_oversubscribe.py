"""Benchmark: quickstart's step time on an idle CPU and beside one competing busy process.

Variants, each in a fresh process (the OpenMP wait policy is read once, when torch loads):

* ``threads=1``, ``threads=2``: the config's override, with gansn's passive wait policy;
* ``default``: ``threads=0``, gansn's fair share (gansn/threads.py) and passive wait policy;
* ``spin=N``: the default with ``GOMP_SPINCOUNT=N`` (idle workers spin N times, then sleep);
* ``torch-default``: what ``threads: 0`` did before: one thread per usable core and libgomp's
  own wait policy (torch imported before gansn, so gansn's policy comes too late).

Each variant runs alone and beside ``python -c "while True: pass"`` (started first, killed
after).  A timed block is ``--steps`` calls of ``train_step()`` after two warm-up steps (no
run dir writes, metrics, samples or Lipschitz tracking; the EMA update stays); ms/step is
the median over ``--blocks`` blocks, then over ``--repeats`` rounds.  Prints per-variant
idle and busy times, busy/idle, and the two figures issue 25 asks for: the default beside a
busy process against the best of threads=1/2 there (goal <= ~1.2x), and the default on the
idle CPU against torch's default there (goal ~1.0x).

Needs idle cores: other load is a second competitor and the ratios mean nothing.

    python scripts/bench_oversubscribe.py [--steps 20] [--blocks 3] [--repeats 3]
        [--variants threads=1,threads=2,default,torch-default,spin=30000]
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = ("threads=1", "threads=2", "default", "torch-default")
OVERRIDES = [
    "experiment=quickstart",
    "steps=1",
    "sample_every=0",
    "ckpt_every=0",
    "lipschitz_every=0",
    "metrics=none",
]


def worker(variant: str, steps: int, blocks: int) -> None:
    """One variant's per-block ms/step, as one JSON line on stdout."""
    if variant.startswith("spin="):
        # gansn's default, with libgomp's workers spinning GOMP_SPINCOUNT times before they
        # sleep (PASSIVE alone: 0; libgomp's default: 300,000, ~3 ms)
        os.environ["GOMP_SPINCOUNT"] = variant.partition("=")[2]
        threads = 0
    elif variant == "torch-default":
        import torch  # noqa: F401 -- before gansn: libgomp keeps its own wait policy, as before

        threads = len(os.sched_getaffinity(0))  # torch's default count
    else:
        # gansn first (as its console scripts do): its wait policy is set before torch loads
        threads = 0 if variant == "default" else int(variant.partition("=")[2])

    from gansn.config import compose, to_plain
    from gansn.training import build_trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(to_plain(compose([*OVERRIDES, f"threads={threads}"])), tmp)
        for _ in range(2):  # first-call allocations
            trainer.train_step()
        per_step = []
        for _ in range(blocks):
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            per_step.append(1000 * (time.perf_counter() - t0) / steps)
    print(
        json.dumps(
            {
                "variant": variant,
                "threads": trainer.threads.threads,
                "why": trainer.threads.describe(),
                "ms": per_step,
            }
        )
    )


def measure(variant: str, busy: bool, args, env: dict[str, str]) -> dict:
    worker_args = ["--steps", str(args.steps), "--blocks", str(args.blocks)]
    hog = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)  # running before the worker starts
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", variant, *worker_args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if out.returncode != 0:
        sys.exit(f"bench_oversubscribe: {variant} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lines.splitlines():
            if line.startswith("Model name:"):
                return line.partition(":")[2].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    from gansn.cli.args import ArgumentParser, comma_list, typed
    from gansn.schema import Int, Str
    from gansn.threads import usable_cores, wait_policy_note

    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=typed(Int(1)), default=20, help="G steps per timed block")
    ap.add_argument("--blocks", type=typed(Int(1)), default=3, help="timed blocks per process")
    ap.add_argument("--repeats", type=typed(Int(1)), default=3, help="rounds of all variants")
    ap.add_argument("--variants", type=comma_list(Str()), default=",".join(VARIANTS))
    args = ap.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS and not re.fullmatch(r"spin=\d+", v)]
    if unknown:
        ap.error(
            f"argument --variants: unknown {', '.join(unknown)}; choose from {VARIANTS} "
            "or spin=N (gansn's default with GOMP_SPINCOUNT=N)"
        )

    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # the default variant must choose for itself
    if "set by gansn" in wait_policy_note():
        env.pop("OMP_WAIT_POLICY")  # ours, not the user's: each worker's gansn sets it
    import torch

    cores, where = usable_cores()
    print(
        f"CPU: {cpu_model()}; {where}; torch {torch.__version__}; python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f} at start"
    )
    if os.getloadavg()[0] > 0.5:
        print("warning: the CPU is not idle; every ratio below includes that other load")
    print(
        f"quickstart (DCGAN width 0.25, batch 64), {args.blocks} blocks of {args.steps} "
        f"steps per process, {args.repeats} rounds; competitor: one busy Python process"
    )
    ms: dict[tuple[str, bool], list[float]] = {}
    why: dict[str, str] = {}
    for _ in range(args.repeats):
        for variant in args.variants:
            for busy in (False, True):
                r = measure(variant, busy, args, env)
                ms.setdefault((variant, busy), []).append(statistics.median(r["ms"]))
                why[variant] = r["why"]
    med = {k: statistics.median(v) for k, v in ms.items()}
    print(f"{'variant':<14} {'idle ms':>8} {'busy ms':>8} {'busy/idle':>9}  chosen")
    for v in args.variants:
        idle, busy = med[(v, False)], med[(v, True)]
        print(f"{v:<14} {idle:8.1f} {busy:8.1f} {busy / idle:9.2f}  {why[v]}")
    fixed = [v for v in ("threads=1", "threads=2") if v in args.variants]
    if "default" in args.variants and fixed:
        best = min(med[(v, True)] for v in fixed)
        print(
            f"busy CPU: default / best of {'/'.join(fixed)} = "
            f"{med[('default', True)] / best:.2f} (goal <= ~1.2)"
        )
    if "default" in args.variants and "torch-default" in args.variants:
        print(
            f"idle CPU: default / torch-default = "
            f"{med[('default', False)] / med[('torch-default', False)]:.2f} (goal ~1.0); "
            f"busy CPU: {med[('default', True)] / med[('torch-default', True)]:.2f}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end (cores {cores:g})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[4]), int(sys.argv[6]))
    else:
        from gansn.cli.args import run_script

        run_script(main, "bench_oversubscribe")
