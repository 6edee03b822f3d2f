"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Both estimate each distribution's support as the union of k-nearest-neighbour balls around its
samples.  Directions matter and are easy to swap (torch-fidelity once did):

* precision = fraction of FAKE samples inside the REAL manifold   (quality / fidelity)
* recall    = fraction of REAL samples inside the FAKE manifold   (diversity)
* density   = (1 / kN_f) Σ_fake #{real balls containing it}        (can exceed 1)
* coverage  = fraction of REAL balls that contain at least one fake sample

The radius of a sample's ball is the distance to its k-th nearest neighbour in its own set,
the sample itself excluded.  P/R use ``d <= r`` (Kynkäänniemi's reference code), D/C use
``d < r`` (Naeem's ``prdc`` package).  Distances are computed in row blocks, so memory is
O(block · N) rather than O(N²): 10k × 10k fits comfortably.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["density_coverage", "kth_nn_radii", "prdc", "precision_recall"]


def _blocks(x: np.ndarray, block: int) -> Iterator[tuple[int, np.ndarray]]:
    for i in range(0, len(x), block):
        yield i, x[i : i + block]


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """(n, d), (m, d) -> (n, m) Euclidean distances (via the Gram expansion, clipped at 0)."""
    d2 = (a * a).sum(1)[:, None] + b_sq[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(d2, 0.0, None))


def kth_nn_radii(x: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """(N, d) -> (N,) distance from each row to its k-th nearest other row."""
    x = np.asarray(x, np.float64)
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} needs 1 <= k < N={len(x)}")
    x_sq = (x * x).sum(1)
    out = np.empty(len(x))
    for i, a in _blocks(x, block):
        d = _sq_dists(a, x, x_sq)
        # the self-distance is 0 (or round-off) and sorts first, so index k is the k-th other
        d[np.arange(len(a)), i + np.arange(len(a))] = -1.0
        out[i : i + len(a)] = np.partition(d, k, axis=1)[:, k]
    return out


def _inside_counts(
    query: np.ndarray, ref: np.ndarray, radii: np.ndarray, strict: bool, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: #ref balls containing it; for each ref ball: whether any query hits.

    query: (n, d), ref: (m, d), radii: (m,) -> ((n,) int counts, (m,) bool hit).
    """
    ref_sq = (ref * ref).sum(1)
    counts = np.empty(len(query), dtype=np.int64)
    hit = np.zeros(len(ref), dtype=bool)
    for i, q in _blocks(query, block):
        d = _sq_dists(q, ref, ref_sq)
        inside = d < radii[None, :] if strict else d <= radii[None, :]
        counts[i : i + len(q)] = inside.sum(1)
        hit |= inside.any(0)
    return counts, hit


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3, block: int = 1024
) -> dict[str, float]:
    """Improved precision and recall; real: (N_r, d), fake: (N_f, d) features."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    in_real, _ = _inside_counts(fake, real, kth_nn_radii(real, k, block), False, block)
    in_fake, _ = _inside_counts(real, fake, kth_nn_radii(fake, k, block), False, block)
    return {"precision": float((in_real > 0).mean()), "recall": float((in_fake > 0).mean())}


def density_coverage(
    real: np.ndarray, fake: np.ndarray, k: int = 5, block: int = 1024
) -> dict[str, float]:
    """Density and coverage; real: (N_r, d), fake: (N_f, d) features."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    counts, hit = _inside_counts(fake, real, kth_nn_radii(real, k, block), True, block)
    return {"density": float(counts.sum() / (k * len(fake))), "coverage": float(hit.mean())}


def prdc(
    real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5, block: int = 1024
) -> dict[str, float]:
    """All four: precision/recall with k_pr neighbours, density/coverage with k_dc."""
    return {
        **precision_recall(real, fake, k_pr, block),
        **density_coverage(real, fake, k_dc, block),
    }
