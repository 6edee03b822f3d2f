"""``gansn-train``: the Hydra app that trains one run (or a sweep with ``-m``)."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from gansn.config import compose, config_dir, to_plain
from gansn.errors import ConfigError

log = logging.getLogger("gansn.train")


def run(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, float]:
    """Resolve resume, build the trainer (all validation), then write and train."""
    # imported here: torch and the models load only once a run starts, so --help and
    # --cfg answer at once
    from gansn.checkpoint import find_checkpoint, load_checkpoint
    from gansn.training import build_trainer

    if cfg.get("resume"):
        ckpt_path = find_checkpoint(cfg.resume)
        saved = load_checkpoint(ckpt_path)
        # the run's own overrides first, today's on top: `resume=... steps=5000` extends it
        today = [o for o in overrides if not o.startswith("resume=")]
        overrides = list(saved.get("overrides", [])) + today
        cfg = compose([*overrides, f"resume={ckpt_path}"])
        run_dir = ckpt_path.parent.parent
    plain = to_plain(cfg)
    trainer = build_trainer(plain, run_dir, overrides=overrides, resume=plain.get("resume"))
    _write_hydra_files(cfg, run_dir, overrides)
    final = trainer.train()
    if trainer.stopped_by is not None:
        # the run saved itself; exiting (rather than returning) also stops a -m sweep
        sys.exit(128 + signal.Signals[trainer.stopped_by].value)
    return final


def _write_hydra_files(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    """What Hydra's output_subdir would hold, written only once the config is valid."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, hydra_dir / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), hydra_dir / "overrides.yaml")
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _app(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        final = run(cfg, run_dir, list(hc.overrides.task))
    except ConfigError as err:
        _remove_if_empty(run_dir)
        log.error("%s", err)
        sys.exit(2)
    # a sweeper optimising something gets the main metric back
    return final.get("metrics/fid", final.get("loss/g"))


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # Hydra creates the run dir before the app runs; leave no empty husk


def _missing_launcher(argv: list[str]) -> str | None:
    """One line for a SLURM sweep asked for without its optional launcher plugin."""
    import importlib.util

    wants_slurm = any("hydra/launcher=" in a and ("slurm" in a or "submitit" in a) for a in argv)
    if wants_slurm and importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        return (
            "gansn-train: hydra/launcher=gansn_slurm needs the submitit launcher plugin: "
            "pip install 'gansn[slurm]'"
        )
    return None


def main() -> None:
    problem = _missing_launcher(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(2)
    if any(a in ("--help", "-h") for a in sys.argv[1:]):
        from gansn.cli.help import help_text

        print(help_text())
        return
    _app()


if __name__ == "__main__":
    main()
