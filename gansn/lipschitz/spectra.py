"""Singular-value spectra of D's layers (the SNGAN paper's figure 2) and their plot.

matplotlib is imported lazily (it is the optional ``report`` extra), so importing gansn never
needs it.  The figure is a plain ``matplotlib.figure.Figure`` (no pyplot state): save it with
``fig.savefig`` or log it with ``SummaryWriter.add_figure``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gansn.lipschitz.operators import WEIGHTED, weight_matrix
from gansn.lipschitz.rules import layer_names, readable_name


def singular_value_spectra(module: nn.Module, *, normalized: bool = True) -> dict[str, np.ndarray]:
    """Full singular value spectrum of every conv/linear/deconv effective weight matrix.

    Returns ``{layer name: (min(out, in*k*k),) array}``, sorted descending, divided by the
    largest when ``normalized`` (the SNGAN paper's figure 2).  Matrices are the
    ``(out, in*kh*kw)`` reshapes of :func:`weight_matrix`.
    """
    out: dict[str, np.ndarray] = {}
    names = layer_names(module)
    for path, m in module.named_modules():
        if isinstance(m, WEIGHTED) and "parametrizations" not in path.split("."):
            s = torch.linalg.svdvals(weight_matrix(m).double().cpu()).numpy()
            out[names.get(path, readable_name(path))] = s / s[0] if normalized and s[0] > 0 else s
    return out


def circular_conv_singular_values(weight: Tensor, n: int) -> Tensor:
    """All singular values of a stride-1 circular 2-D conv on ``n x n`` inputs.

    Sedghi, Gupta & Long (2019): the conv is block-diagonalised by the 2-D DFT, so its
    singular values are those of the ``(c_out, c_in)`` matrices of the kernel's FFT, zero
    padded to ``n x n``, at each of the ``n^2`` frequencies.  ``weight (c_out, c_in, k, k)``
    -> ``(n*n*min(c_out, c_in),)`` descending.  (torch's conv is a correlation; that flips
    the kernel, which conjugates each matrix and leaves singular values unchanged.)
    """
    transfer = torch.fft.fft2(weight.double(), s=(n, n))  # (c_out, c_in, n, n)
    mats = transfer.permute(2, 3, 0, 1)  # (n, n, c_out, c_in)
    return torch.linalg.svdvals(mats).flatten().sort(descending=True).values


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
            :func:`singular_value_spectra` per checkpoint.  Layers
            are taken in the order of the first label; values are re-normalized by their
            maximum so raw and normalized spectra plot alike.
        path: where to write the PNG (optional).
    Returns:
        the ``matplotlib.figure.Figure``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from err

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


__all__ = [
    "circular_conv_singular_values",
    "plot_singular_value_spectra",
    "singular_value_spectra",
]
