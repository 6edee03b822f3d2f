"""Add finished runs (new seeds of a study) to a study's committed logs folder.

    python scripts/add_seed_logs.py RUN_DIR [RUN_DIR ...] --logs docs/showcase/<study>/logs

Each run's config.yaml, metrics.jsonl, status.json and Hydra's record of its config and
overrides are copied to ``<logs>/<setting>_<D
norm>_s<seed>`` (what a report rebuilt from the logs reads), and the breadth of D's final
singular-value spectra, computed from the run's ``checkpoints/last.pt`` as ``gansn-report``
computes it, is added to ``<logs>/spectra_breadth.json`` (checkpoints are too big to commit).
Only finished runs are added; a run already there is refused, so nothing committed is
overwritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gansn.cli.args import ArgumentParser, run_script
from gansn.errors import ConfigError
from gansn.report.collect import load_run
from gansn.report.spectra import BREADTH_FILE, d_spectra, stable_rank_fraction
from gansn.utils import atomic_write

FILES = (
    "config.yaml",
    "metrics.jsonl",
    "status.json",
    ".hydra/config.yaml",
    ".hydra/overrides.yaml",
)


def breadth(checkpoint: Path) -> tuple[list[str], list[float]]:
    """Per D layer with more than one singular value: its title as the report writes it
    ("layer 3: conv3_3x3", numbered over all of D's layers) and its stable-rank fraction."""
    layers = [
        (f"layer {i}: {name[-24:]}", s) for i, (name, s) in enumerate(d_spectra(checkpoint), 1)
    ]
    layers = [(title, s) for title, s in layers if len(s) > 1]
    return [t for t, _ in layers], [stable_rank_fraction(s) for _, s in layers]


def name_of(run_dir: Path) -> str:
    run = load_run(run_dir, run_dir.parent)
    if run.status != "completed":
        raise ConfigError(f"{run_dir} is not a finished run (status {run.status!r})")
    cfg = run.config
    # the study's table axis: the optimizer setting where one is set, else the dataset
    table = cfg.get("setting") or cfg["dataset"]["name"]
    return f"{table}_{cfg['d_norm']['name']}_s{cfg['seed']}"


def main() -> None:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished run dirs")
    ap.add_argument("--logs", type=Path, required=True, help="the study's logs folder")
    args = ap.parse_args()
    saved_file = args.logs / BREADTH_FILE
    if saved_file.is_file():
        saved = json.loads(saved_file.read_text())
    elif not args.logs.exists() or not any(args.logs.iterdir()):
        saved = None  # a new study's logs: its first run names D's layers
    else:
        raise ConfigError(f"{saved_file} does not exist: is {args.logs} a study's logs folder?")
    plan = []
    for run_dir in args.runs:
        name = name_of(run_dir)
        if (args.logs / name).exists() or (saved and name in saved["runs"]):
            raise ConfigError(f"{args.logs / name} already exists: not overwritten")
        ckpt = run_dir / "checkpoints" / "last.pt"
        if not ckpt.is_file():
            raise ConfigError(f"{ckpt} does not exist: its spectra cannot be measured")
        names, values = breadth(ckpt)
        if saved is None:
            saved = {
                "layers": names,
                "runs": {},
                "provenance": "stable-rank fractions of each run's final D",
            }
        if names != saved["layers"]:
            raise ConfigError(f"{ckpt}: D's layers {names} are not the study's {saved['layers']}")
        plan.append((run_dir, name, values))
    for run_dir, name, values in plan:
        (args.logs / name / ".hydra").mkdir(parents=True)
        for f in FILES:
            shutil.copy2(run_dir / f, args.logs / name / f)
        saved["runs"][name] = values
        print(f"{run_dir} -> {args.logs / name}")
    if plan:
        saved["provenance"] += (
            f"; runs {', '.join(n for _, n, _ in plan)} added by scripts/add_seed_logs.py "
            "from their checkpoints/last.pt on the machine that trained them"
        )
    text = json.dumps(saved, indent=1) + "\n"
    atomic_write(saved_file, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    run_script(main, "add_seed_logs")
