"""``gansn-train``: the Hydra app that trains one run (or a sweep with ``-m``).

Exit codes: 0 done (or nothing to do: the run already is at ``steps``); 2 bad input or a
refusal, before anything is written (invalid config, damaged checkpoint, a run that would
be shortened, a run dir another process writes); 3 the loss or the weights went NaN/Inf;
74 (``EX_IOERR``) a write failed mid-run (disk full, ...); 128+N stopped by signal N after
saving.  Each failure is one line on stderr.

A bad command line -- an unknown key (``foo=1``, ``+foo=1``, ``dataset.nn=5``), a missing
group option (``norm@d_norm=spectrl``), an unparsable override or a value out of range -- is
refused by :func:`gansn.cli.overrides.check_command_line` before Hydra makes a run dir; what
only the app can find (a resume's composition, a missing dataset) is refused inside it.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from gansn.cli import sweep
from gansn.cli.overrides import check_command_line, hydra_error_line
from gansn.config import compose, config_dir, to_plain
from gansn.errors import ConfigError

if TYPE_CHECKING:
    from gansn.distributed import Rank

log = logging.getLogger("gansn.train")

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_IO_ERROR = 74  # sysexits.h EX_IOERR


def run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str],
    parallel_jobs: int | None = None,
    *,
    explicit_dir: bool = False,
    rank: Rank | None = None,
) -> float | None:
    """Resolve resume, build the run (all validation), then open the run dir, write and train.

    ``parallel_jobs``: the runs a launcher runs side by side, which share the CPU's cores.
    ``explicit_dir``: ``run_dir`` was asked for (``hydra.run.dir``); with ``resume=X`` and
    another dir than X's own, the run branches: it continues from X's checkpoint in
    ``run_dir`` (X's history copied in) and X is left as it is, as Lightning's ``ckpt_path``.
    ``rank``: this process's :class:`~gansn.distributed.Rank` once it joined the process
    group (None: the run joins it).
    Returns what a Hydra sweeper optimises (:func:`objective`), None for a run with
    nothing to do.
    """
    # imported here: torch and the models load only once a run starts, so --help and
    # --cfg answer at once
    from gansn.checkpoint import find_checkpoint, load_checkpoint
    from gansn.training import RunDir, RunIOError, Trainer, build_run

    branch_from: Path | None = None
    resume = None
    if cfg.get("resume"):
        ckpt_path = find_checkpoint(cfg.resume)
        resume = load_checkpoint(ckpt_path, resume=True)  # the one load: the run resumes it
        # the run's own overrides first, today's on top: `resume=... steps=5000` extends it
        today = [o for o in overrides if not o.startswith("resume=")]
        overrides = list(resume.get("overrides", [])) + today
        cfg = _compose([*overrides, f"resume={ckpt_path}"])
        source = ckpt_path.parent.parent
        if explicit_dir and run_dir.resolve() != source.resolve():
            branch_from = source
            _check_branch_dir(run_dir, ckpt_path)
        else:
            run_dir = source
    plain = _plain(cfg, overrides)
    built = build_run(
        plain,
        run_dir,
        overrides=overrides,
        resume=resume,
        rank=rank,
        parallel_jobs=parallel_jobs,
    )
    # under torchrun rank 0 alone writes the run dir
    files = RunDir(run_dir, writes=built.rank.is_main)
    trainer = Trainer(built, files)
    if trainer.done:
        # re-running a finished run (a repeated command, a re-submitted sweep) is not an
        # error, and must not rewrite its config, samples or checkpoint
        log.info(
            "%s is already at step %d (steps=%d): nothing to do; pass steps=<more> to continue",
            run_dir,
            trainer.step,
            trainer.steps,
        )
        return None
    # the lock before the first write: a second command into a running run changes nothing
    with files:
        try:
            if branch_from is not None:
                files.copy_history(branch_from, trainer.step)
            write_config_files(files, cfg, overrides)
        except OSError as err:
            raise RunIOError(
                f"cannot write {err.filename or run_dir}: {err.strerror or err}; nothing was "
                "trained and the run dir's files are as they were"
            ) from err
        final = trainer.train()
    if trainer.stopped_by is not None:
        # the run saved itself; exiting (rather than returning) also stops a -m sweep
        sys.exit(128 + signal.Signals[trainer.stopped_by].value)
    log.info("%s", run_summary(trainer, run_dir))
    return objective(trainer, final)


# what a run dir holds once a run has written into it
_RUN_FILES = ("checkpoints", "metrics.jsonl", "status.json", "config.yaml")


def _check_branch_dir(run_dir: Path, ckpt_path: Path) -> None:
    """A branch goes into a new (or empty) dir: never over another run's files."""
    held = [name for name in _RUN_FILES if (run_dir / name).exists()]
    if held:
        raise ConfigError(
            f"hydra.run.dir={run_dir} already holds a run ({held[0]}); resume={ckpt_path} "
            "branches into a new or empty dir: choose another hydra.run.dir, or drop it to "
            "continue the checkpoint's own run"
        )


def objective(trainer: Any, final: dict[str, float]) -> float | None:
    """What a Hydra sweeper optimises: the first hook's objective (the evaluation's kept
    metric, FID by default), else G's last loss."""
    found = (h.objective(final) for h in trainer.hooks)
    return next((v for v in found if v is not None), final.get("loss/g"))


def run_summary(trainer: Any, run_dir: Path) -> str:
    """What a finished run left and measured, for the terminal: where the grid, checkpoint
    and logs are, the final metrics, D's Lipschitz bracket, and the TensorBoard command."""

    v = trainer.last_values
    minutes, seconds = divmod(round(trainer.elapsed), 60)
    lines = [
        f"finished {trainer.step} G steps in {minutes} min {seconds:02d} s of training",
        f"  samples      {run_dir / 'samples' / 'final.png'}",
        f"  checkpoint   {run_dir / 'checkpoints' / 'last.pt'}",
        f"  logs         {run_dir / 'train.log'}, {run_dir / 'metrics.jsonl'}",
    ]
    for hook in trainer.hooks:  # what each measured, in its own words
        lines += hook.summary(v)
    # Custom Scalars is the tab gansn lays out: the Lipschitz bracket and generator quality
    lines.append(
        f"  TensorBoard  tensorboard --logdir {run_dir}, then http://localhost:6006/#custom_scalars"
    )
    return "\n".join(lines)


def _compose(overrides: list[str]) -> DictConfig:
    """Compose, with Hydra's and OmegaConf's errors as one-line ``ConfigError``s."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        return compose(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(hydra_error_line(err, overrides)) from None


def _plain(cfg: DictConfig, overrides: list[str]) -> dict[str, object]:
    """``to_plain`` with a broken interpolation (``steps=${nope}``) as a ``ConfigError``."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return to_plain(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(hydra_error_line(err, overrides)) from None


def write_config_files(files: Any, cfg: DictConfig, overrides: list[str]) -> None:
    """What Hydra's output_subdir would hold, written only once the config is valid, through
    the run's :class:`~gansn.training.rundir.RunDir` (atomically: a resumed run rewrites
    them, and a full disk must not leave them torn)."""
    files.write_text(".hydra/config.yaml", OmegaConf.to_yaml(cfg))
    files.write_text(".hydra/overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    files.write_text("config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _app(cfg: DictConfig) -> float | None:
    # imported here for the same reason as in run()
    from gansn import distributed
    from gansn.training import NonFiniteLossError, RunIOError

    hc = HydraConfig.get()
    hydra_dir = run_dir = Path(hc.runtime.output_dir)
    sweep.job_started()  # a launcher's worker process stops with its sweep
    try:
        rank = distributed.setup(str(OmegaConf.select(cfg, "distributed.backend") or "auto"))
        if not rank.is_main:
            logging.getLogger().setLevel(logging.WARNING)  # rank 0 reports for all
        # each rank's Hydra resolved ${now:...} on its own clock: all take rank 0's dir
        run_dir = Path(distributed.broadcast_object(str(run_dir)))
        explicit = hc.mode.name == "RUN" and any(
            o.startswith("hydra.run.dir=") for o in hc.overrides.hydra
        )
        score = run(
            cfg,
            run_dir,
            list(hc.overrides.task),
            _parallel_jobs(hc),
            explicit_dir=explicit,
            rank=rank,
        )
    except ConfigError as err:
        _fail(err, EXIT_BAD_INPUT)
    except NonFiniteLossError as err:
        _fail(err, EXIT_DIVERGED)
    except RunIOError as err:
        _fail(err, EXIT_IO_ERROR)
    finally:
        # Hydra makes its run dir before the app runs; a refused run, or a resume that
        # trains in the resumed run's own dir, must not leave that (or outputs/) behind
        own_dir = not any(o.startswith("hydra.run.dir=") for o in hc.overrides.hydra)
        _remove_empty(hydra_dir, parents=own_dir and hc.mode.name == "RUN")
        distributed.teardown()
        sweep.job_finished()
    # a sweeper optimising something gets the main metric back
    return score


def _parallel_jobs(hc: Any) -> int | None:
    """``hydra.launcher.n_jobs`` of a sweep (the joblib launcher's), else None."""
    from hydra.types import RunMode

    if hc.mode != RunMode.MULTIRUN:
        return None
    n_jobs = OmegaConf.select(hc.launcher, "n_jobs")
    return int(n_jobs) if isinstance(n_jobs, int) else None


def _fail(err: Exception, code: int) -> None:
    from gansn.distributed import launched

    if launched().is_main:  # under torchrun every rank fails alike; one line is enough
        print(f"error: {err}", file=sys.stderr)
    sys.exit(code)


def _remove_empty(path: Path, *, parents: bool) -> None:
    """Remove ``path`` if empty and, with ``parents``, its empty parents inside the cwd."""
    cwd = Path.cwd().resolve()
    path = path.resolve()
    while path != cwd:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (or gone): everything above is in use too
        if not parents or cwd not in path.parents:
            return
        path = path.parent


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


def _multirun_under_torchrun(argv: list[str]) -> str | None:
    from gansn.distributed import launched

    if launched().distributed and any(a in ("-m", "--multirun") for a in argv):
        return (
            "torchrun starts the ranks of one run: drop -m, or sweep with a launcher that "
            "starts each run's ranks (hydra/launcher=gansn_slurm, docs/distributed.md)"
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
    # before Hydra: its own errors would be several lines with exit code 1, after it has
    # made the run dir
    problem = check_command_line(sys.argv[1:]) or _multirun_under_torchrun(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if any(a in ("-m", "--multirun") for a in sys.argv[1:]):
        sweep.mark_sweep()
    _app()


if __name__ == "__main__":
    main()
