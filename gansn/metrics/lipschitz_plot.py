"""The SNGAN paper's figure 2: singular value spectra of D's layers, one line per model.

matplotlib is imported lazily (it is the optional ``report`` extra), so importing gansn never
needs it.  The figure is a plain ``matplotlib.figure.Figure`` (no pyplot state): save it with
``fig.savefig`` or log it with ``SummaryWriter.add_figure``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def plot_singular_value_spectra(
    spectra: dict[str, dict[str, np.ndarray]],
    path: str | Path | None = None,
    *,
    ncols: int = 4,
    title: str | None = None,
) -> Any:
    """One subplot per layer, one line per label: sorted ``sigma_i / sigma_1``.

    Args:
        spectra: ``{label: {layer: singular values}}``, e.g. from
            :func:`gansn.metrics.lipschitz.singular_value_spectra` per checkpoint.  Layers
            are taken in the order of the first label; values are re-normalized by their
            maximum so raw and normalized spectra plot alike.
        path: where to write the PNG (optional).
    Returns:
        the ``matplotlib.figure.Figure``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'gansn[report]'") from err

    layers: list[str] = []
    for per_layer in spectra.values():
        layers += [name for name in per_layer if name not in layers]
    ncols = max(1, min(ncols, len(layers)))
    nrows = max(1, math.ceil(len(layers) / ncols))
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows), constrained_layout=True)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        for label, per_layer in spectra.items():
            if layer not in per_layer:
                continue
            s = np.sort(np.asarray(per_layer[layer], dtype=float))[::-1]
            s = s / s[0] if s.size and s[0] > 0 else s
            # a rank-1 layer (D's final linear) is a single point: give it a marker
            ax.plot(np.arange(1, s.size + 1), s, label=label, marker="o" if s.size < 3 else None)
        ax.set_title(layer, fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("index", fontsize=8)
        ax.set_ylabel(r"$\sigma_i / \sigma_1$", fontsize=8)
    for ax in list(axes.flat)[len(layers) :]:
        ax.set_visible(False)
    if len(spectra) > 1 or any(spectra):
        axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(Path(path), dpi=120)
    return fig


__all__ = ["plot_singular_value_spectra"]
