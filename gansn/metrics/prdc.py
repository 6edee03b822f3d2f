"""Improved precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Both estimate each distribution's support as the union of k-nearest-neighbour balls around its
samples.  Directions matter and are easy to swap (torch-fidelity once did):

* precision = fraction of FAKE samples inside the REAL manifold   (quality / fidelity)
* recall    = fraction of REAL samples inside the FAKE manifold   (diversity)
* density   = (1 / kN_f) Σ_fake #{real balls containing it}        (can exceed 1)
* coverage  = fraction of REAL balls that contain at least one fake sample

The radius of a sample's ball is the distance to its k-th nearest neighbour in its own set,
the sample itself excluded.  P/R use ``d <= r`` (Kynkäänniemi's reference code), D/C use
``d < r`` (Naeem's ``prdc`` package).  Distances are computed in float64 and in blocks, so
memory is O(block · N) rather than O(N²): 10k × 10k fits comfortably.

Each distance is computed once: the within-set distances block by block over one triangle
(the block (i, j) serves the rows of i and, transposed, those of j), keeping every radius
needed (both k) from the same blocks; the real × fake distances in one pass that feeds all
four scores.  Balls are compared on squared distances (sqrt is monotone), so no N² square
roots are taken.
"""

from __future__ import annotations

import numpy as np

__all__ = ["density_coverage", "kth_nn_radii", "prdc", "precision_recall"]


def _sq_dists(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """(n, d), (m, d) and their squared norms -> (n, m) squared Euclidean distances.

    The Gram expansion, clipped at 0 (round-off can make it slightly negative).  ``a is b``
    gives a BLAS syrk: half the work of a general product.
    """
    d2 = a @ b.T
    d2 *= -2.0
    d2 += a_sq[:, None]
    d2 += b_sq[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _smallest(d2: np.ndarray, k: int) -> np.ndarray:
    """(n, m) -> (n, k) the k smallest of each row, unordered; +inf where m < k."""
    if d2.shape[1] <= k:
        pad = np.full((len(d2), k - d2.shape[1]), np.inf)
        return np.concatenate([d2, pad], axis=1)
    return np.partition(d2, k - 1, axis=1)[:, :k]


def _self_knn_sq(x: np.ndarray, ks: tuple[int, ...], block: int) -> list[np.ndarray]:
    """(N, d) float64 -> for each k in ``ks``: (N,) squared distance to the k-th nearest other row.

    Walks the blocks (i, j), j >= i, of the distance matrix once; each row keeps the
    max(ks) smallest distances of every block it meets, and its k-th smallest other
    distance is selected from those candidates at the end.
    """
    n = len(x)
    for k in ks:
        if not 1 <= k < n:
            raise ValueError(f"k={k} needs 1 <= k < N={n}")
    kmax = max(ks)
    x_sq = np.einsum("ij,ij->i", x, x)
    starts = list(range(0, n, block))
    cand = np.empty((n, len(starts), kmax))
    for bi, i in enumerate(starts):
        a, a_sq = x[i : i + block], x_sq[i : i + block]
        for bj in range(bi, len(starts)):
            j = starts[bj]
            d2 = _sq_dists(a, a_sq, x[j : j + block], x_sq[j : j + block])
            if bi == bj:
                # a row is not its own neighbour
                np.fill_diagonal(d2, np.inf)
            cand[i : i + len(a), bj] = _smallest(d2, kmax)
            if bi != bj:
                cand[j : j + d2.shape[1], bi] = _smallest(d2.T, kmax)
    cand = cand.reshape(n, -1)
    return [np.partition(cand, k - 1, axis=1)[:, k - 1] for k in ks]


def kth_nn_radii(x: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """(N, d) -> (N,) distance from each row to its k-th nearest other row."""
    x = np.ascontiguousarray(x, np.float64)
    return np.sqrt(_self_knn_sq(x, (k,), block)[0])


def _scores(
    real: np.ndarray,
    fake: np.ndarray,
    k_pr: int | None,
    k_dc: int | None,
    recall: bool,
    block: int,
) -> dict[str, float]:
    """The scores asked for (P with k_pr, R if ``recall``, D/C with k_dc) from one real × fake pass.

    real: (N_r, d), fake: (N_f, d) float64.
    """
    real_ks = tuple(k for k in (k_pr, k_dc) if k is not None)
    real_r2 = dict(zip(real_ks, _self_knn_sq(real, real_ks, block)))
    fake_r2 = _self_knn_sq(fake, (k_pr,), block)[0] if recall else None
    real_sq = np.einsum("ij,ij->i", real, real)
    fake_sq = np.einsum("ij,ij->i", fake, fake)
    in_real = np.zeros(len(fake), dtype=bool)  # fake inside some real k_pr ball
    in_fake = np.zeros(len(real), dtype=bool)  # real inside some fake k_pr ball
    counts = np.zeros(len(fake), dtype=np.int64)  # real k_dc balls holding each fake
    nearest_fake = np.full(len(real), np.inf)  # per real: squared distance to nearest fake
    for i in range(0, len(fake), block):
        f = slice(i, i + block)
        d2 = _sq_dists(fake[f], fake_sq[f], real, real_sq)  # (b, N_r)
        if k_pr is not None:
            in_real[f] = (d2 <= real_r2[k_pr][None, :]).any(1)
        if recall:
            in_fake |= (d2 <= fake_r2[f][:, None]).any(0)
        if k_dc is not None:
            counts[f] = np.count_nonzero(d2 < real_r2[k_dc][None, :], axis=1)
            np.minimum(nearest_fake, d2.min(0), out=nearest_fake)
    out: dict[str, float] = {}
    if k_pr is not None:
        out["precision"] = float(in_real.mean())
    if recall:
        out["recall"] = float(in_fake.mean())
    if k_dc is not None:
        out["density"] = float(counts.sum() / (k_dc * len(fake)))
        # a real ball holds a fake iff its nearest fake is strictly inside it
        out["coverage"] = float((nearest_fake < real_r2[k_dc]).mean())
    return out


def _as_features(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(real, np.float64), np.ascontiguousarray(fake, np.float64)


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3, block: int = 1024
) -> dict[str, float]:
    """Improved precision and recall; real: (N_r, d), fake: (N_f, d) features."""
    return _scores(*_as_features(real, fake), k, None, True, block)


def density_coverage(
    real: np.ndarray, fake: np.ndarray, k: int = 5, block: int = 1024
) -> dict[str, float]:
    """Density and coverage; real: (N_r, d), fake: (N_f, d) features."""
    return _scores(*_as_features(real, fake), None, k, False, block)


def prdc(
    real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5, block: int = 1024
) -> dict[str, float]:
    """All four: precision/recall with k_pr neighbours, density/coverage with k_dc.

    One pass: the real radii for both k from one walk over the real × real distances, and
    the real × fake distances once for all four scores.
    """
    return _scores(*_as_features(real, fake), k_pr, k_dc, True, block)
