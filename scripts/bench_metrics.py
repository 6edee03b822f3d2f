#!/usr/bin/env python
"""Benchmarks for gansn.metrics (not a test): run ``python scripts/bench_metrics.py``.

1. Fréchet distance at d = 2048: gansn's symmetric-eigendecomposition route vs the
   ``scipy.linalg.sqrtm(Σ1 Σ2)`` route of pytorch-fid (time ratio and |ΔFID|).
2. FID Inception feature throughput on this CPU (images/s; batch size and threads stated).
3. Peak memory of the streaming feature statistics at N = 5k vs N = 50k (tracemalloc).

Options: ``--skip-inception`` (no weights on this machine), ``--images N``, ``--batch B``,
``--threads T``, ``--repeats R``.

On a shared machine run it with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``: multi-threaded
BLAS on oversubscribed cores busy-waits and slows some routes by 10-20x, which makes the
timings meaningless.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np
import scipy
import scipy.linalg
import torch

from gansn.cli.args import ArgumentParser, run_script, typed
from gansn.metrics.fid import StreamingStats, frechet_distance
from gansn.schema import Int


def fid_sqrtm(mu1, s1, mu2, s2, eps: float = 1e-6) -> float:
    """pytorch-fid's calculate_frechet_distance (without its disp argument, gone in SciPy 1.18)."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_stats(rng: np.random.Generator, d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Statistics shaped like Inception features: (d,) mean, (d, d) covariance of rank min(n, d)."""
    feats = np.abs(rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)))
    return feats.mean(0), np.cov(feats, rowvar=False)


def bench_frechet(d: int, n: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    mu1, s1 = random_stats(rng, d, n)
    mu2, s2 = random_stats(rng, d, n)
    routes = {
        "gansn auto (Cholesky; eigh if singular)": lambda: frechet_distance(mu1, s1, mu2, s2),
        "gansn eigh (sqrt(S1) S2 sqrt(S1))": lambda: frechet_distance(
            mu1, s1, mu2, s2, method="eigh"
        ),
        "scipy.linalg.sqrtm (pytorch-fid)": lambda: fid_sqrtm(mu1, s1, mu2, s2),
    }
    samples: dict[str, list[float]] = {name: [] for name in routes}
    values: dict[str, float] = {}
    # round-robin, best of R: load from other processes then hits every route alike
    for _ in range(repeats):
        for name, fn in routes.items():
            t = time.perf_counter()
            values[name] = fn()
            samples[name].append(time.perf_counter() - t)
    times = {name: min(ts) for name, ts in samples.items()}
    ref = "scipy.linalg.sqrtm (pytorch-fid)"
    print(f"## Fréchet distance, d={d}, covariances from N={n} samples (best of {repeats})")
    for name in routes:
        extra = (
            ""
            if name == ref
            else (
                f"  {times[ref] / times[name]:5.1f}x faster, "
                f"|ΔFID| = {abs(values[name] - values[ref]):.2e}"
            )
        )
        print(f"{name:42s}: {times[name]:7.3f} s  FID = {values[name]:.6f}{extra}")


def bench_inception(images: int, batch: int) -> None:
    from gansn.metrics.features import InceptionFeatures

    ext = InceptionFeatures()
    x = torch.rand(images, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ext(x[:2])  # warm-up: first-call allocations and kernel selection
    t = time.perf_counter()
    for i in range(0, images, batch):
        ext(x[i : i + batch])
    dt = time.perf_counter() - t
    bs = min(batch, images)
    t = time.perf_counter()
    ext(x[:bs])
    best = bs / (time.perf_counter() - t)
    print(f"## Inception features ({ext.info['format']} weights, 32x32 RGB -> bilinear 299)")
    print(
        f"{images} images, batch {batch}, torch threads {torch.get_num_threads()}: "
        f"{dt:.1f} s = {images / dt:.2f} images/s (one more batch alone: {best:.2f} images/s)"
    )


def bench_memory(d: int, sizes: list[int], batch: int) -> None:
    print(f"## Streaming statistics peak memory (d={d}, batches of {batch}, tracemalloc)")
    rng = np.random.default_rng(0)
    block = rng.standard_normal((batch, d)).astype(np.float32)  # reused: we measure the stats
    for n in sizes:
        tracemalloc.start()
        acc = StreamingStats()
        for _ in range(n // batch):
            acc.update(block)
        acc.stats()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stored = n * d * 8
        print(
            f"N={n:6d}: peak {peak / 2**20:7.1f} MiB  "
            f"(keeping all float64 features would need {stored / 2**20:7.1f} MiB)"
        )


def main() -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--skip-inception", action="store_true")
    p.add_argument("--images", type=typed(Int(1)), default=64)
    p.add_argument("--batch", type=typed(Int(1)), default=16)
    p.add_argument("--threads", type=typed(Int(0)), default=0, help="torch threads (0: default)")
    p.add_argument("--repeats", type=typed(Int(1)), default=3)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"# gansn.metrics benchmarks: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"numpy {np.__version__}, "
        f"scipy {scipy.__version__}, torch {torch.__version__}"
    )
    bench_frechet(2048, 4096, args.repeats)
    if not args.skip_inception:
        bench_inception(args.images, args.batch)
    bench_memory(2048, [5_000, 50_000], 500)
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    run_script(main, "bench_metrics")
