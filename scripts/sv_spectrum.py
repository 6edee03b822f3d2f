"""Singular value spectra of D's layers for one or more checkpoints (SNGAN paper, fig. 2).

    python scripts/sv_spectrum.py runs/sn/ckpt.pt=SN runs/wn/ckpt.pt=WN --out sv.png

Each argument is a checkpoint file or run directory, optionally ``=LABEL``.
"""

from __future__ import annotations

import logging

from gansn.cli.args import ArgumentParser, run_script, typed
from gansn.lipschitz import plot_singular_value_spectra, singular_value_spectra
from gansn.schema import OutFile

log = logging.getLogger("sv_spectrum")


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="sv_spectrum", description=__doc__.splitlines()[0])
    parser.add_argument("ckpts", nargs="+", help="checkpoint or run dir, optionally =LABEL")
    parser.add_argument(
        "--out",
        type=typed(OutFile((".png", ".pdf", ".svg")), str),
        default="sv_spectrum.png",
        help="figure to write (.png, .pdf or .svg)",
    )
    parser.add_argument("--raw", action="store_true", help="plot sigma_i, not sigma_i/sigma_1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from gansn.checkpoint import load_models

    spectra = {}
    for item in args.ckpts:
        path, _, label = item.partition("=")
        _, D, spec = load_models(path)
        spectra[label or f"{path} (D {spec.d_norm.get('name')})"] = singular_value_spectra(
            D, normalized=not args.raw
        )
    plot_singular_value_spectra(spectra, args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_script(main, "sv_spectrum")
