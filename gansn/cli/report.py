"""``gansn-report <sweep dir> [--out DIR] [--title T] [--curves TAG,...]``: a sweep's runs
-> one report folder.

No Hydra app: the report reads finished run directories and needs no config composition.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gansn.cli.args import ArgumentParser, comma_list
from gansn.errors import ConfigError
from gansn.schema import Str


def _folder_to_write(text: str) -> str:
    """``--out``: a folder that can be created or written (checked before any work)."""
    path = Path(text).expanduser()
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{probe} exists and is not a folder; give a folder")
    return text


def _existing_folder(text: str) -> str:
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder (give a sweep's multirun dir)")
    return text


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="gansn-report",
        description="Aggregate a normalization-study sweep (a Hydra multirun dir) into "
        "report.md, report.html, summary.json and figures.",
    )
    p.add_argument(
        "sweep_dir",
        type=_existing_folder,
        help="the multirun dir (or any dir holding run dirs)",
    )
    p.add_argument(
        "--out",
        default=None,
        type=_folder_to_write,
        help="report folder (default: <sweep_dir>/report)",
    )
    p.add_argument("--title", default=None, help="report title")
    p.add_argument(
        "--no-plots", action="store_true", help="tables only; no figures (works without matplotlib)"
    )
    p.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="skip figures that load checkpoints (spectra, toy points)",
    )
    p.add_argument(
        "--curves",
        default=[],
        type=comma_list(Str()),
        metavar="TAG[,TAG...]",
        help="more logged tags to plot against the step, e.g. metrics/recall,modes/class_coverage",
    )
    p.add_argument(
        "--embed-images",
        action="store_true",
        help="inline the PNGs into report.html (one self-contained file)",
    )
    p.add_argument(
        "--last-k",
        type=int,
        default=None,
        metavar="K",
        help="a run's final score is the mean of its last K evaluations (default: the runs' "
        "study.last_k, else 3; 1 = the last value)",
    )
    p.add_argument(
        "--claims",
        default=None,
        metavar="YAML",
        help="test the claims of this file's study.claims (e.g. a study preset) instead of "
        "the runs' own",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 ok, 2 usage or input error)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad command line (2, its line printed)
        return int(stop.code or 0)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.last_k is not None and args.last_k < 1:
        print(f"gansn-report: error: --last-k must be >= 1, got {args.last_k}", file=sys.stderr)
        return 2
    # imported here: a bad command line is refused before matplotlib and torch load
    from gansn.report import ReportDependencyError, build_report
    from gansn.study.verdicts import claims_from_file

    try:
        claims = claims_from_file(args.claims) if args.claims else None
        out = build_report(
            args.sweep_dir,
            args.out,
            title=args.title,
            plots=not args.no_plots,
            checkpoint_figures=not args.no_checkpoints,
            embed_images=args.embed_images,
            curves=args.curves,
            last_k=args.last_k,
            claims=claims,
        )
    except (FileNotFoundError, ReportDependencyError, ConfigError) as err:
        print(f"gansn-report: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {out / 'report.md'}")
    print(f"        {out / 'report.html'}")
    print(f"        {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
