"""One-shot Lipschitz analysis for notebooks and ``gansn-lipschitz``, and its text table."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gansn.lipschitz.tracker import BoundMode, LipschitzTracker


def lipschitz_report(
    D: nn.Module,
    input_shape: tuple[int, ...],
    *,
    real: Tensor | None = None,
    fake: Tensor | None = None,
    n_iter: int = 200,
    bound_mode: BoundMode = "auto",
    prefix: str = "d",
    strict: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One-shot analysis from a notebook: ``(per-layer table, tags -> values)``.

    ``D`` maps ``(N, *input_shape)`` to ``(N,)``; ``real``/``fake`` are optional batches for
    the empirical lower bounds.  ``n_iter`` power-iteration steps from random starts.
    """
    tracker = LipschitzTracker(
        D,
        input_shape,
        n_iter=n_iter,
        n_iter_init=n_iter,
        bound_mode=bound_mode,
        prefix=prefix,
        strict=strict,
    )
    values = tracker.measure(real, fake)
    return tracker.table(), values


def format_table(rows: list[dict[str, Any]], *, all_layers: bool = False) -> str:
    """Plain-text table of :meth:`LipschitzTracker.table` rows (weighted and norm layers,
    or every leaf with ``all_layers``)."""

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    cols = [
        "name",
        "type",
        "in_shape",
        "sigma_matrix",
        "sigma_operator",
        "raw_sigma",
        "gain_worst",
        "gain_eval",
        "gain_batch",
        "lip_operator",
        "notes",
    ]
    keep = [
        r
        for r in rows
        if all_layers or r["sigma_matrix"] is not None or r["gain_worst"] is not None
    ]
    cells = [cols] + [
        [f(tuple(r[c][1:]) if c == "in_shape" and r[c] else r[c]) for c in cols] for r in keep
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


__all__ = ["format_table", "lipschitz_report"]
