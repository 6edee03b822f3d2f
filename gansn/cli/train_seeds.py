"""Several seeds of one config trained in one process, stacked (``scripts/train_seeds.py``).

    python scripts/train_seeds.py --seeds 0 1 2 3 4 --dir runs/grid experiment=pacgan_grid25

trains seed ``s`` into ``<dir>/s<s>`` as ``gansn-train <overrides> seed=<s>
hydra.run.dir=<dir>/s<s>`` would (the same initialisation, data order, latents, logs,
checkpoints, ``.hydra/`` files), with one batched G/D update of all seeds per step
(:mod:`gansn.training.multiseed`).  Re-running the same command resumes every seed;
``gansn-train resume=<dir>/s<s>`` continues one seed alone.  Only configs that
:func:`gansn.training.stacked.check_supported` accepts (PacGAN's MLP pair and relatives:
MLP, batch norm or none, simultaneous updates, Adam) are run; anything else is refused in
one line with exit code 2.  Whether this is faster than one run per process is measured in
BENCHMARKS.md ("Seeds per hour").

Exit codes as ``gansn-train``'s: 0 done; 2 bad input or a refusal (nothing written);
3 a seed diverged (the others finish); 74 a write failed; 128+N stopped by signal N after
every seed saved.  Each seed that failed is one line on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from gansn.cli.args import ArgumentParser
from gansn.cli.overrides import check_command_line
from gansn.cli.train import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_IO_ERROR,
    _compose,
    _plain,
    write_config_files,
)
from gansn.errors import ConfigError

log = logging.getLogger("gansn.train_seeds")

# keys the command sets per seed, or that a stacked run cannot take
_OWN_KEYS = ("seed", "resume", "hydra.")


def main(argv: list[str] | None = None) -> None:
    ap = ArgumentParser(
        prog="train_seeds",
        description="Train several seeds of one gansn-train config in one process, stacked.",
    )
    ap.add_argument("--seeds", type=int, nargs="+", required=True, help="the seeds to train")
    ap.add_argument("--dir", required=True, help="parent dir: seed s trains in <dir>/s<s>")
    ap.add_argument("overrides", nargs="*", help="gansn-train overrides (key=value)")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s][%(threadName)s][%(name)s][%(levelname)s] %(message)s",
        stream=sys.stdout,
    )
    try:
        results = _train(args.seeds, Path(args.dir), list(args.overrides))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(_exit_code(results))


def _train(seeds: list[int], parent: Path, overrides: list[str]) -> dict[int, Any]:
    # imported here: torch loads only once a run starts, as in gansn-train
    from gansn.training.multiseed import build_seeds, train_seeds

    if len(set(seeds)) != len(seeds) or len(seeds) < 2:
        raise ConfigError(f"--seeds needs two or more distinct seeds, got {seeds}")
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if o.startswith("-") or any(key == k or key.startswith(k) for k in _OWN_KEYS):
            raise ConfigError(
                f"{o!r} cannot be passed here: --seeds sets seed, --dir the run dirs, and "
                "a run is resumed by re-running the same command"
            )
    problem = check_command_line([*overrides, f"seed={seeds[0]}"])
    if problem:
        raise ConfigError(problem)
    per_seed = [[*overrides, f"seed={s}"] for s in seeds]
    cfgs = [_compose(ov) for ov in per_seed]
    dirs = [parent / f"s{s}" for s in seeds]
    trainers, rng = build_seeds([_plain(c, ov) for c, ov in zip(cfgs, per_seed)], dirs, per_seed)
    if all(t.done for t in trainers):
        log.info("every seed is at steps=%d already: nothing to do", trainers[0].steps)
        return {}
    files = {id(t): (cfg, ov) for t, cfg, ov in zip(trainers, cfgs, per_seed)}

    def run(trainer: Any) -> dict[str, float]:
        cfg, ov = files[id(trainer)]
        with trainer.files:  # the run dir opened once, around its config files and training
            write_config_files(trainer.files, cfg, ov)
            return trainer.train()

    log.info("training seeds %s stacked in one process into %s/s<seed>", seeds, parent)
    results = train_seeds(trainers, rng, run)
    stopped = {t.stopped_by for t in trainers if t.stopped_by is not None}
    out = dict(zip(seeds, results))
    if stopped:
        out["stopped"] = stopped.pop()
    return out


def _exit_code(results: dict[Any, Any]) -> int:
    from gansn.training import NonFiniteLossError, RunIOError

    code = 0
    for seed, r in results.items():
        if not isinstance(r, BaseException):
            continue
        print(f"error: seed {seed}: {r}", file=sys.stderr)
        if isinstance(r, ConfigError):
            code = max(code, EXIT_BAD_INPUT)
        elif isinstance(r, NonFiniteLossError):
            code = max(code, EXIT_DIVERGED)
        elif isinstance(r, RunIOError):
            code = max(code, EXIT_IO_ERROR)
        else:
            with contextlib.suppress(Exception):
                log.error("seed %s failed", seed, exc_info=r)
            code = max(code, 1)
    if "stopped" in results and code == 0:
        code = 128 + signal.Signals[results["stopped"]].value
    return code


if __name__ == "__main__":
    main()
