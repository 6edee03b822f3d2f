#!/usr/bin/env python
"""Benchmarks for gansn.metrics (not a test): run ``python scripts/bench_metrics.py``.

1. Fréchet distance at d = 2048: gansn's symmetric-eigendecomposition route vs the
   ``scipy.linalg.sqrtm(Σ1 Σ2)`` route of pytorch-fid (time ratio and |ΔFID|).
2. KID vs torch-fidelity's ``kid_features_to_metric`` (N = 10k, d = 2048, 20 subsets of 1000)
   and PRDC vs the ``prdc`` package's ``compute_prdc`` (N = 2k, 5k, 10k, d = 2048, k = 5), on
   Inception-like features (non-negative float32).  gansn and the peer alternate inside one
   process (the order flips every repetition); medians, min-max and the median of the
   per-pair time ratios are printed, in wall time and in this process's CPU time, with each
   result's difference from the peer's and, for KID, from a float64 evaluation of the same
   subsets.
3. FID Inception feature throughput on this CPU (images/s; batch size and threads stated).
4. Peak memory of the streaming feature statistics at N = 5k vs N = 50k (tracemalloc).

Options: ``--skip-inception`` (no weights on this machine), ``--images N``, ``--batch B``,
``--threads T``, ``--repeats R``, ``--only fid,peers,inception,memory``, ``--kid-n``,
``--kid-subsets``, ``--kid-repeats``, ``--prdc-n``, ``--peer-repeats``.  The peers come from
``pip install 'gansn[bench]'`` (prdc, scikit-learn, torch-fidelity); a missing one is
skipped with a note.

On a shared machine run it with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``: multi-threaded
BLAS on oversubscribed cores busy-waits and slows some routes by 10-20x, which makes the
timings meaningless.  ``--threads T`` sets torch's threads and, through threadpoolctl when it
is installed, the BLAS threads of both gansn and the peers; the ``prdc`` package's own
``n_jobs=8`` (sklearn worker threads on top of BLAS) is set to 1 so both run on the same
threads.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import scipy.linalg
import torch

from gansn.cli.args import ArgumentParser, run_script, typed
from gansn.metrics.fid import StreamingStats, frechet_distance, kid
from gansn.metrics.prdc import prdc
from gansn.schema import Int

SECTIONS = ["fid", "peers", "inception", "memory"]


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


def cpu_model() -> str:
    """``lscpu``'s model name (platform.processor() is only "x86_64" on Linux)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())


def inception_like(rng: np.random.Generator, n: int, d: int, mix: np.ndarray) -> np.ndarray:
    """(n, d) float32, non-negative and correlated like pooled Inception features."""
    z = rng.standard_normal((n, d), dtype=np.float32)
    return np.abs(z @ mix.astype(np.float32, copy=False))


def load_torch_fidelity_kid() -> Callable[..., dict[str, float]]:
    """torch-fidelity's ``kid_features_to_metric``, as installed.

    ``import torch_fidelity`` imports every feature extractor and torchvision with them; where
    that import fails (a torchvision built for another torch), ``metric_kid.py`` is loaded
    without the package's ``__init__``, with a stand-in for ``torch_fidelity.utils``, whose
    feature-extraction helpers the feature-level KID function does not call.  The KID code
    that runs is the installed file either way.
    """
    try:
        return importlib.import_module("torch_fidelity.metric_kid").kid_features_to_metric
    except ImportError:
        raise
    except Exception:
        for name in [m for m in sys.modules if m.startswith("torch_fidelity")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("torch_fidelity")
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["torch_fidelity"] = pkg
    utils = types.ModuleType("torch_fidelity.utils")
    for name in (
        "create_feature_extractor",
        "extract_featuresdict_from_input_id_cached",
        "resolve_feature_extractor",
        "resolve_feature_layer_for_metric",
    ):
        setattr(utils, name, None)
    sys.modules["torch_fidelity.utils"] = utils
    return importlib.import_module("torch_fidelity.metric_kid").kid_features_to_metric


def load_prdc(threads: int) -> Callable[..., dict[str, float]]:
    """The ``prdc`` package's ``compute_prdc`` with its sklearn ``n_jobs=8`` set to ``threads``.

    prdc 0.2 hard-codes ``n_jobs=8`` in ``compute_pairwise_distance``: eight sklearn worker
    threads, each running BLAS, against gansn's one.  The replacement below is the package's
    function with only that number changed; ``compute_prdc`` looks it up at call time.
    """
    import prdc as prdc_pkg
    import sklearn.metrics

    mod = sys.modules["prdc.prdc"]

    def compute_pairwise_distance(data_x, data_y=None):
        if data_y is None:
            data_y = data_x
        return sklearn.metrics.pairwise_distances(
            data_x, data_y, metric="euclidean", n_jobs=threads
        )

    mod.compute_pairwise_distance = compute_pairwise_distance

    def compute(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the sample counts
            out = prdc_pkg.compute_prdc(real, fake, nearest_k=k)
        return {key: float(v) for key, v in out.items()}

    return compute


def alternate(
    routes: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Any]]:
    """Times each route ``repeats`` times, alternating, the order reversed every repetition
    so neither route always runs first (after the other's cache and allocator state).

    Returns wall and CPU seconds (this process's, all its threads) per route, and the last
    result.  On a core that other processes share, wall time also counts the time they held
    it; CPU time does not, so it is the steadier measure of the work itself.
    """
    names = list(routes)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    values: dict[str, Any] = {}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t, c = time.perf_counter(), time.process_time()
            values[name] = routes[name]()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - t)
    return wall, cpu, values


def spread(ts: list[float]) -> str:
    return f"median {statistics.median(ts):6.2f} s ({min(ts):6.2f}-{max(ts):6.2f})"


def pair_ratio(ours: list[float], peer: list[float]) -> str:
    """Median and range of gansn/peer over the repetitions (each pair ran back to back)."""
    r = [a / b for a, b in zip(ours, peer, strict=True)]
    return f"{statistics.median(r):.2f}x (pairs {min(r):.2f}-{max(r):.2f}x)"


def report_times(
    wall: dict[str, list[float]], cpu: dict[str, list[float]], peer: str, indent: str = ""
) -> None:
    """Each route's wall and CPU times; each gansn route's ratio to ``peer``, both ways."""
    for name in wall:
        print(f"{indent}{name:19s}: wall {spread(wall[name])}, CPU {spread(cpu[name])}")
    for name in wall:
        if name != peer:
            print(
                f"{indent}{name} / {peer}: wall {pair_ratio(wall[name], wall[peer])}, "
                f"CPU {pair_ratio(cpu[name], cpu[peer])}"
            )


def kid_float64(real: np.ndarray, fake: np.ndarray, draws: list[tuple[np.ndarray, np.ndarray]]):
    """MMD² of the given subsets with every operation in float64 (the exact reference)."""
    from gansn.metrics.fid import mmd2_polynomial

    r64, f64 = real.astype(np.float64), fake.astype(np.float64)
    return np.array([mmd2_polynomial(r64[i], f64[j]) for i, j in draws])


def bench_kid(n: int, d: int, subsets: int, repeats: int) -> None:
    print(f"## KID vs torch-fidelity: N={n} real and fake, d={d}, {subsets} subsets of 1000")
    try:
        tf_kid = load_torch_fidelity_kid()
    except ImportError as err:
        print(f"skipped: torch-fidelity is not installed ({err}); pip install 'gansn[bench]'")
        return
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((d, d), dtype=np.float32) / d**0.5
    real = inception_like(rng, n, d, mix)
    fake = inception_like(rng, n, d, mix + 0.1 * rng.standard_normal((d, d), np.float32) / d**0.5)
    real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
    routes = {
        "gansn kid": lambda: kid(real, fake, num_subsets=subsets, subset_size=1000, seed=0),
        "torch-fidelity": lambda: tf_kid(
            real_t, fake_t, kid_subsets=subsets, kid_subset_size=1000, rng_seed=0, verbose=False
        ),
    }
    wall, cpu, values = alternate(routes, repeats)
    report_times(wall, cpu, "torch-fidelity")
    # the same numbers: both estimators evaluated on identical subsets (torch-fidelity's draws,
    # from its RandomState(seed)), and both against float64 arithmetic on those subsets
    from gansn.metrics.fid import mmd2_polynomial

    draw = np.random.RandomState(0)
    draws = [
        (draw.choice(n, 1000, replace=False), draw.choice(n, 1000, replace=False))
        for _ in range(subsets)
    ]
    ours = np.array([mmd2_polynomial(real[i], fake[j]) for i, j in draws])
    exact = kid_float64(real, fake, draws)
    tf_mean = values["torch-fidelity"]["kernel_inception_distance_mean"]
    tf_std = values["torch-fidelity"]["kernel_inception_distance_std"]
    print(
        f"on torch-fidelity's subsets: float64 {exact.mean():.9f} ± {exact.std():.9f}, "
        f"gansn {ours.mean():.9f} ± {ours.std():.9f}, torch-fidelity {tf_mean:.9f} ± {tf_std:.9f}"
    )
    print(
        f"|Δ| from float64: gansn {abs(ours.mean() - exact.mean()):.1e} "
        f"(worst subset {np.abs(ours - exact).max():.1e}), "
        f"torch-fidelity {abs(tf_mean - exact.mean()):.1e}"
    )
    mean, std = values["gansn kid"]
    print(f"gansn kid() on its own subsets: {mean:.9f} ± {std:.9f}")


def bench_prdc(
    sizes: list[int], d: int, k: int, repeats: int, threads: int, defaults: bool = True
) -> None:
    print(f"## PRDC vs the prdc package: d={d}, k={k} (gansn: k_pr = k_dc = k), N real = N fake")
    try:
        peer = load_prdc(threads)
    except ImportError as err:
        print(f"skipped: prdc or scikit-learn is not installed ({err}); pip install 'gansn[bench]'")
        return
    rng = np.random.default_rng(2)
    mix = rng.standard_normal((d, d), dtype=np.float32) / d**0.5
    shifted = mix + 0.3 * rng.standard_normal((d, d), np.float32) / d**0.5
    for n in sizes:
        real = inception_like(rng, n, d, mix)
        fake = inception_like(rng, n, d, shifted)
        routes = {
            "gansn prdc": lambda r=real, f=fake: prdc(r, f, k_pr=k, k_dc=k),
            "prdc package": lambda r=real, f=fake: peer(r, f, k),
        }
        if defaults:
            # gansn's defaults: two k, still one walk over each distance matrix
            routes["gansn k_pr=3,k_dc=5"] = lambda r=real, f=fake: prdc(r, f, k_pr=3, k_dc=5)
        wall, cpu, values = alternate(routes, repeats)
        ours, theirs = values["gansn prdc"], values["prdc package"]
        print(f"N={n}")
        report_times(wall, cpu, "prdc package", indent="  ")
        print("  " + ", ".join(f"{key} {ours[key]:.4f} / {theirs[key]:.4f}" for key in ours))
        print(f"  max |Δ| {max(abs(ours[key] - theirs[key]) for key in ours):.1e} (gansn / prdc)")


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


def sizes(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",")]
    except ValueError:
        out = []
    if not out or min(out) < 10:
        raise argparse.ArgumentTypeError(f"{text!r}: want sample counts >= 10, e.g. 2000,5000")
    return out


def main() -> None:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--skip-inception", action="store_true")
    p.add_argument("--images", type=typed(Int(1)), default=64)
    p.add_argument("--batch", type=typed(Int(1)), default=16)
    p.add_argument("--threads", type=typed(Int(0)), default=0, help="torch threads (0: default)")
    p.add_argument("--repeats", type=typed(Int(1)), default=3)
    p.add_argument(
        "--only",
        type=lambda t: t.split(","),
        default=SECTIONS,
        help=f"comma-separated sections to run, of {','.join(SECTIONS)}",
    )
    p.add_argument("--kid-n", type=typed(Int(1000)), default=10_000)
    p.add_argument("--kid-subsets", type=typed(Int(1)), default=20)
    p.add_argument("--prdc-n", type=sizes, default=[2000, 5000, 10_000], help="e.g. 2000,5000")
    p.add_argument("--peer-repeats", type=typed(Int(1)), default=4, help="PRDC repetitions")
    p.add_argument("--kid-repeats", type=typed(Int(1)), default=10)
    p.add_argument(
        "--no-prdc-defaults",
        action="store_true",
        help="skip the third PRDC route (gansn at its defaults k_pr=3, k_dc=5)",
    )
    args = p.parse_args()
    if unknown := sorted(set(args.only) - set(SECTIONS)):
        p.error(f"--only: unknown sections {unknown}; choose from {SECTIONS}")
    threads = args.threads or torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    print(
        f"# gansn.metrics benchmarks: {cpu_model()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"BLAS threads: {blas_threads()}, torch threads {torch.get_num_threads()}, "
        f"numpy {np.__version__}, "
        f"scipy {scipy.__version__}, torch {torch.__version__}"
    )
    if "fid" in args.only:
        bench_frechet(2048, 4096, args.repeats)
    if "peers" in args.only:
        bench_kid(args.kid_n, 2048, args.kid_subsets, args.kid_repeats)
        bench_prdc(args.prdc_n, 2048, 5, args.peer_repeats, threads, not args.no_prdc_defaults)
    if "inception" in args.only and not args.skip_inception:
        bench_inception(args.images, args.batch)
    if "memory" in args.only:
        bench_memory(2048, [5_000, 50_000], 500)
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    run_script(main, "bench_metrics")
