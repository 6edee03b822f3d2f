"""``gansn-lipschitz ckpt=<checkpoint or run dir> [key=value ...]``: D's Lipschitz table.

Prints, per conv/linear/deconv and normalization layer of D, sigma_matrix, sigma_operator
and the normalization gains, then the whole-D bounds (see :mod:`gansn.lipschitz`).  The
gradient-norm lower bounds use the inputs the training run's Lipschitz hook uses — the same
fixed real batch and G's samples of the same fixed latents, with D in training mode — so the
CLI and the run's last ``lipschitz/grad_{real,fake}_*`` agree.
"""

from __future__ import annotations

from typing import Any

from gansn.cli.args import parse, run_cli
from gansn.errors import ConfigError
from gansn.schema import REQUIRED, Bool, Choice, Int, Key, Node, Str, complete

USAGE = "usage: gansn-lipschitz ckpt=<checkpoint or run dir> [key=value ...]"
OPTIONS = Node(
    {
        "ckpt": Key(Str(), REQUIRED, "checkpoint file or run dir"),
        "n_iter": Key(Int(1), 200, "power-iteration steps per layer"),
        "n": Key(
            Int(0, words=("run",)),
            "run",
            "real and generated samples for the lower bounds (run: the run's "
            "lipschitz.n_samples, as in training; 0: none)",
        ),
        "real": Key(
            Bool(),
            True,
            "include the run's fixed real batch (false: generated samples only, for a machine "
            "without the dataset)",
        ),
        "mode": Key(
            Choice(("train", "eval")),
            "train",
            "train: normalization layers at their worst case max|gamma|/sqrt(eps); eval: "
            "eval-mode batch norm enters with its running-statistics gain",
        ),
        "g": Key(Bool(), False, "also analyse G (on its latent input)"),
        "all": Key(Bool(), False, "list every leaf module, not only weighted and norm layers"),
        "seed": Key(
            Int(0, words=("run",)),
            "run",
            "seed of the real batch and latents (run: the run's seed, as in training)",
        ),
    }
)


def _load_models(path: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(G, D, spec, the run's config)``; a checkpoint not written by a training run has no
    config (``{}``)."""
    from gansn.checkpoint import load_checkpoint, load_models

    G, D, spec = load_models(path)
    return G, D, spec, load_checkpoint(path).get("config") or {}


def _training_inputs(
    opts: dict[str, Any], spec: Any, cfg: dict[str, Any]
) -> tuple[Any, Any, int, int]:
    """``(real batch or None, latents or None, n, seed)`` as the run's Lipschitz hook drew
    them: ``fixed_real_batch(data, n, seed + 1)`` and latents of seed + 2."""
    import torch

    from gansn.data import build_dataset
    from gansn.training.hooks import fixed_real_batch

    # no config, or one from an older gansn that lacks keys: measured as a run with the
    # training defaults would be
    cfg = complete(cfg)
    n = int(cfg["lipschitz"]["n_samples"]) if opts["n"] == "run" else opts["n"]
    seed = int(cfg["seed"]) if opts["seed"] == "run" else int(opts["seed"])
    if not n:
        return None, None, 0, seed
    real = None
    if opts["real"] and "dataset" in cfg:
        try:
            real = fixed_real_batch(build_dataset(cfg["dataset"]), n, seed + 1)
        except ConfigError as err:
            raise ConfigError(
                f"{err}; pass real=false to bound with generated samples only"
            ) from None
    z = torch.randn(n, spec.z_dim, generator=torch.Generator().manual_seed(seed + 2))
    return real, z, n, seed


def report(opts: dict[str, Any]) -> str:
    """Analyse the checkpoint named by ``opts`` (parsed :data:`OPTIONS`); returns the text."""
    # imported here (as in _load_models): a bad command line is refused before torch loads
    import torch

    from gansn.lipschitz import format_table, lipschitz_report

    if opts["mode"] not in ("train", "eval"):
        raise ConfigError(f"mode must be train or eval, got {opts['mode']!r}")
    G, D, spec, cfg = _load_models(str(opts["ckpt"]))
    G.eval()
    real, z, n, seed = _training_inputs(opts, spec, cfg)
    fake = None
    if z is not None:
        with torch.no_grad():
            fake = G(z)
    # as the training hook: D in training mode (its norms at their worst case in the bound)
    D.train(opts["mode"] == "train")
    lines = [
        f"checkpoint: {opts['ckpt']}",
        f"arch={spec.arch} shape={tuple(spec.shape)} width={spec.width} "
        f"d_norm={spec.d_norm} g_norm={spec.g_norm}",
        f"lower bounds on {n} samples (seed {seed}): "
        + ("the run's fixed real batch, " if real is not None else "")
        + "G's samples of its fixed latents"
        + (", and interpolations" if real is not None else ""),
        "",
    ]
    todo = [("d", D, tuple(spec.shape), real, fake)]
    if opts["g"]:
        todo.append(("g", G, (spec.z_dim,), None, z))
    for prefix, model, shape, r, x in todo:
        rows, values = lipschitz_report(
            model,
            shape,
            real=r,
            fake=x,
            n_iter=int(opts["n_iter"]),
            bound_mode=opts["mode"],
            prefix=prefix,
        )
        lines += [
            f"== {prefix.upper()} (bound mode: {opts['mode']}) ==",
            format_table(rows, all_layers=bool(opts["all"])),
            "",
        ]
        lines += [f"{k:30s} {v:.6g}" for k, v in values.items() if k.startswith("lipschitz/")]
        lines.append("")
    lines.append(
        "upper_operator bounds the Lipschitz constant once the power iterations "
        "have converged; upper_matrix is not a bound for convs; grad_*/fd_ratio are "
        "lower bounds."
    )
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    print(report(parse(argv, OPTIONS, USAGE)))


def main(argv: list[str] | None = None) -> None:
    run_cli(_main, argv)


if __name__ == "__main__":
    main()
