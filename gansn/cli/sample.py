"""``gansn-sample``: checkpoint -> PNG grid, latent interpolations, ``.npz`` of samples.

    gansn-sample ckpt=<checkpoint or run dir> out=samples.png n=64 seed=0
    gansn-sample ckpt=runs/x interp=interp.png rows=8 cols=10
    gansn-sample ckpt=runs/x npz=samples.npz n=10000

Needs neither Hydra nor the original run dir: the checkpoint holds the model spec.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from gansn.cli.args import parse, run_cli
from gansn.errors import ConfigError
from gansn.schema import REQUIRED, Bool, Device, Int, Key, Node, OutFile, Str

log = logging.getLogger("gansn.sample")

USAGE = __doc__
OPTIONS = Node(
    {
        "ckpt": Key(Str(), REQUIRED, "checkpoint file or run dir (uses checkpoints/last.pt)"),
        "out": Key(OutFile((".png",), null=True), None, "PNG grid of n samples"),
        "n": Key(Int(1), 64, "samples in the grid / npz"),
        "nrow": Key(Int(1), 8, "images per grid row"),
        "seed": Key(Int(0), 0, "latent seed"),
        "ema": Key(Bool(), True, "sample the EMA generator when the run kept one"),
        "interp": Key(OutFile((".png",), null=True), None, "PNG of latent interpolations"),
        "rows": Key(Int(1), 8, "interpolations (grid rows)"),
        "cols": Key(Int(2), 10, "steps per interpolation (an interpolation has two ends)"),
        "npz": Key(
            OutFile((".npz",), null=True),
            None,
            ".npz with x: (n, H, W, C) uint8 images (or (n, 2) float32 points)",
        ),
        "batch_size": Key(Int(1), 256, "generator batch size"),
        "device": Key(Device(), "cpu", "cpu | cuda"),
    }
)


def main_args(argv: list[str]) -> None:
    # imported here (and in _centers): a bad command line is refused before torch loads
    from gansn.checkpoint import load_generator
    from gansn.sampling import (
        interpolation_latents,
        sample,
        save_image,
        to_grid,
        to_uint8_nhwc,
    )

    a = parse(argv, OPTIONS, USAGE)
    if not (a["out"] or a["interp"] or a["npz"]):
        a["out"] = "samples.png"
        if (
            line := OPTIONS.keys["out"].rule.problem("out", a["out"])
        ) is not None:  # is ./ writable?
            raise ConfigError(f"bad option: {line}")
    outs = [a[k] for k in ("out", "interp", "npz") if a[k]]
    if len({str(Path(p).expanduser().resolve()) for p in outs}) < len(outs):
        raise ConfigError(f"out, interp and npz must be different files, got {', '.join(outs)}")
    from gansn.utils import resolve_device

    device = resolve_device(a["device"])  # cuda without CUDA: one line, not a traceback
    G, spec = load_generator(a["ckpt"], ema=bool(a["ema"]))
    G = G.to(device)
    centers = None
    if len(spec.shape) == 1:
        centers = _centers(a["ckpt"])
    if a["out"] or a["npz"]:
        x = sample(G, int(a["n"]), seed=int(a["seed"]), batch_size=int(a["batch_size"]))
        if a["out"]:
            path = save_image(to_grid(x, int(a["nrow"]), centers=centers), a["out"])
            log.info("wrote %d samples to %s", len(x), path)
        if a["npz"]:
            arr = to_uint8_nhwc(x) if x.dim() == 4 else x.numpy().astype(np.float32)
            Path(a["npz"]).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(a["npz"], x=arr)
            log.info("wrote %s with x: %s %s", a["npz"], arr.shape, arr.dtype)
    if a["interp"]:
        if len(spec.shape) != 3:
            log.warning("interpolation grids are for image models; skipped")
        else:
            z = interpolation_latents(
                int(a["rows"]), int(a["cols"]), spec.z_dim, seed=int(a["seed"])
            )
            x = sample(G, len(z), z=z, batch_size=int(a["batch_size"]))
            path = save_image(to_grid(x, int(a["cols"])), a["interp"])
            log.info("wrote %dx%d interpolation grid to %s", a["rows"], a["cols"], path)


def _centers(ckpt: str) -> np.ndarray | None:
    """True mode centres of a toy run, for the scatter image (None if unavailable)."""
    from gansn.checkpoint import load_checkpoint
    from gansn.data import build_dataset

    try:
        return build_dataset(load_checkpoint(ckpt)["config"]["dataset"]).centers
    except Exception:
        return None


def main() -> None:
    torch.set_grad_enabled(False)
    run_cli(main_args)


if __name__ == "__main__":
    main()
