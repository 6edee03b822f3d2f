"""What the report reads from checkpoints: D's singular value spectra and toy G samples.

Everything goes through lazy imports and is allowed to fail: a run without a checkpoint, or
a checkpoint from another version, costs the report one figure, never the report.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Mode centers of the toy datasets, used when gansn.data cannot be imported or built.
_TOY_CENTERS: dict[str, np.ndarray] = {
    "ring8": np.array(
        [[math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)] for k in range(8)]
    ),
    "grid25": np.array(
        [[x, y] for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)]
    ),
}


def load_models(run_dir: Path, *, ema: bool = False) -> tuple[Any, Any, Any]:
    """``(G, D, spec)`` from ``run_dir/checkpoints/last.pt``, in eval mode on the CPU.

    Prefers ``gansn.sampling.load_models``; falls back to rebuilding from the checkpoint's
    ``spec`` and ``models`` entries so the report works while that module is missing.
    """
    try:
        from gansn.checkpoint import load_models as _load
    except ImportError:
        _load = None
    if _load is not None:
        try:
            G, D, spec = _load(run_dir, ema=ema)
            return G.eval(), D.eval(), spec
        except Exception as err:  # a third-party loader failure must not end the report
            log.warning(
                "gansn.sampling.load_models(%s) failed (%s); rebuilding from the checkpoint's spec",
                run_dir,
                err,
            )
    import torch

    from gansn.nn.archs import ModelSpec, build_models

    ckpt = torch.load(
        Path(run_dir) / "checkpoints" / "last.pt", map_location="cpu", weights_only=True
    )
    spec = ModelSpec.from_dict(ckpt["spec"])
    G, D = build_models(spec)
    models = ckpt["models"]
    G.load_state_dict(models["G_ema"] if ema and models.get("G_ema") else models["G"])
    D.load_state_dict(models["D"])
    return G.eval(), D.eval(), spec


def _effective_matrix(module: Any) -> Any:
    """The layer's weight as an (out, in * k * k) matrix.

    ``module.weight`` evaluates any parametrization (W / sigma for spectral norm, g v/|v|
    for weight norm), so this is the map the layer actually applies.  ConvTranspose2d
    stores (in, out, k, k); transpose first so rows are outputs as for Conv2d.
    """
    import torch
    from torch import nn

    w = module.weight.detach()
    if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        w = w.transpose(0, 1)
    return w.reshape(w.shape[0], -1).to(torch.float64)


def singular_value_spectra(D: Any) -> dict[str, np.ndarray]:
    """Full singular values (descending) of every conv/linear layer's effective weight.

    Uses ``gansn.metrics.lipschitz.singular_value_spectra`` when available.
    """
    try:
        from gansn.lipschitz import singular_value_spectra as _svs
    except ImportError:
        _svs = None
    if _svs is not None:
        try:
            return {k: np.asarray(v, dtype=float) for k, v in _svs(D).items()}
        except Exception as err:  # fall back to the local computation below
            log.warning("gansn.metrics.lipschitz.singular_value_spectra failed: %s", err)
    import torch
    from torch import nn

    layers = (
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.ConvTranspose1d,
        nn.ConvTranspose2d,
        nn.ConvTranspose3d,
        nn.Linear,
    )
    out: dict[str, np.ndarray] = {}
    # eval + no_grad: reading an SN weight in training mode would run a power-iteration step
    # and change the very u/v that the checkpoint stored.
    D.eval()
    with torch.no_grad():
        for name, module in D.named_modules():
            if isinstance(module, layers):
                out[name] = torch.linalg.svdvals(_effective_matrix(module)).numpy()
    return out


def mode_centers(dataset_cfg: dict[str, Any] | None) -> np.ndarray | None:
    """True mode centers of a toy dataset: ``(K, 2)``, or None if unknown."""
    if not dataset_cfg:
        return None
    try:
        from gansn.data import build_dataset

        centers = getattr(build_dataset(dataset_cfg), "centers", None)
        if centers is not None:
            return np.asarray(centers.cpu() if hasattr(centers, "cpu") else centers, dtype=float)
    except Exception as err:  # gansn.data missing or a config it does not accept
        log.debug("gansn.data.build_dataset(%s) unavailable: %s", dataset_cfg, err)
    return _TOY_CENTERS.get(str(dataset_cfg.get("name")))


def generate_points(G: Any, n: int = 2000, seed: int = 0) -> np.ndarray:
    """``n`` samples of a point generator from seeded noise: -> (n, D)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, int(G.z_dim), generator=gen)
    with torch.no_grad():
        return G(z).reshape(n, -1).cpu().numpy()


def is_point_model(spec: Any) -> bool:
    """A generator of 2-D points (the toy datasets)."""
    shape = getattr(spec, "shape", None) or (spec.get("shape") if isinstance(spec, dict) else None)
    return shape is not None and tuple(shape) == (2,)
