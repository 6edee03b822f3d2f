"""``gansn-lipschitz ckpt=<checkpoint or run dir> [key=value ...]``: D's Lipschitz table.

Prints, per conv/linear/deconv and normalization layer of D, sigma_matrix, sigma_operator
and the normalization gains, then the whole-D bounds (see :mod:`gansn.lipschitz`).
"""

from __future__ import annotations

from typing import Any

from gansn.cli.args import parse, run_cli
from gansn.errors import ConfigError
from gansn.schema import Bool, Choice, Int, Str

USAGE = """usage: gansn-lipschitz ckpt=<checkpoint or run dir> [key=value ...]
  n_iter=200   power-iteration steps per layer
  n=64         generated samples for the empirical lower bounds (0: none)
  mode=train   train: normalization layers at their worst case max|gamma|/sqrt(eps);
               eval: eval-mode batch norm enters with its running-statistics gain
  g=false      also analyse G (on its latent input)
  all=false    list every leaf module, not only weighted and normalization layers
  seed=0       seed of the latents"""

DEFAULTS: dict[str, Any] = {
    "ckpt": "???",
    "n_iter": 200,
    "n": 64,
    "mode": "train",
    "g": False,
    "all": False,
    "seed": 0,
}
RULES = {
    "ckpt": Str(),
    "n_iter": Int(1),
    "n": Int(0),
    "mode": Choice(("train", "eval")),
    "g": Bool(),
    "all": Bool(),
    "seed": Int(0),
}


def _load_models(path: str) -> tuple[Any, Any, Any]:
    from gansn.checkpoint import load_models

    return load_models(path)


def report(opts: dict[str, Any]) -> str:
    """Analyse the checkpoint named by ``opts`` (parsed :data:`DEFAULTS`); returns the text."""
    # imported here (as in _load_models): a bad command line is refused before torch loads
    import torch

    from gansn.lipschitz import format_table, lipschitz_report

    if opts["mode"] not in ("train", "eval"):
        raise ConfigError(f"mode must be train or eval, got {opts['mode']!r}")
    G, D, spec = _load_models(str(opts["ckpt"]))
    G.eval()
    gen = torch.Generator().manual_seed(int(opts["seed"]))
    z = torch.randn(int(opts["n"]), spec.z_dim, generator=gen) if opts["n"] else None
    fake = None
    if z is not None:
        with torch.no_grad():
            fake = G(z)
    lines = [
        f"checkpoint: {opts['ckpt']}",
        f"arch={spec.arch} shape={tuple(spec.shape)} width={spec.width} "
        f"d_norm={spec.d_norm} g_norm={spec.g_norm}",
        "",
    ]
    todo = [("d", D, tuple(spec.shape), fake)]
    if opts["g"]:
        todo.append(("g", G, (spec.z_dim,), z))
    for prefix, model, shape, x in todo:
        rows, values = lipschitz_report(
            model, shape, fake=x, n_iter=int(opts["n_iter"]), bound_mode=opts["mode"], prefix=prefix
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
        "lower bounds (eval-mode model, generated samples)."
    )
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    print(report(parse(argv, DEFAULTS, USAGE, RULES)))


def main(argv: list[str] | None = None) -> None:
    run_cli(_main, argv)


if __name__ == "__main__":
    main()
