#!/usr/bin/env python
"""Compare gansn's reproduction of PacGAN's GAN baseline with PacGAN's Table 1.

    python scripts/pacgan_report.py runs/pacgan --out docs/showcase/pacgan

reads ``<root>/<dataset>/s<seed>/metrics.jsonl`` (runs of ``experiment=pacgan_<dataset>``,
e.g. from ``scripts/pacgan_reproduce.sh``), and writes ``report.md``, ``summary.json`` and
figures to ``--out``:

* the per-epoch trajectories of modes, high-quality fraction and reverse KL (PacGAN's
  MetricLogger metrics, logged by the run every epoch on 2,500 samples of fixed latents);
* a table of mean +- std over seeds at chosen epochs (the value *at* that epoch, as PacGAN
  reports its last epoch) and of the mean over the ten epochs before it (how settled the
  run is), beside PacGAN's published rows;
* the final G's samples of each run and, on them, the mode count under two capture rules
  (>= 1 high-quality sample: PacGAN's code; >= 1/5 of N/K samples: the 20-of-2,500 rule
  the VEEGAN-style write-ups state) so a reader sees how much the rule moves the number.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from gansn.cli.args import ArgumentParser, comma_list, run_script
from gansn.report.aggregate import Stat, aggregate, format_stat
from gansn.schema import Int, writable_dir_problem

# PacGAN (Lin, Khetan, Fanti, Oh, NeurIPS 2018), Table 1, row "GAN" (no packing), 10 trials;
# the +- is as printed (the spread of the 10 trials)
PACGAN = {
    "ring8": {"modes": (6.3, 0.5), "high_quality": (0.982, None), "kl": (0.45, None), "K": 8},
    "grid25": {"modes": (17.3, 0.8), "high_quality": (0.948, None), "kl": (0.70, None), "K": 25},
}
TAGS = {"modes": "modes/covered", "high_quality": "modes/high_quality", "kl": "modes/kl"}
LABELS = {"modes": "modes captured", "high_quality": "high-quality samples", "kl": "reverse KL"}
STEPS_PER_EPOCH = 1000  # 100,000 points / batch 100


def read_run(run: Path) -> dict[str, dict[int, float]]:
    """``{metric: {epoch: value}}`` from a run's metrics.jsonl (epochs = step / 1000)."""
    out: dict[str, dict[int, float]] = {k: {} for k in TAGS}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a truncated last line of a killed run
        step = int(rec.get("step", 0))
        if step % STEPS_PER_EPOCH:
            continue
        for key, tag in TAGS.items():
            v = rec.get(tag)
            if isinstance(v, (int, float)):
                out[key][step // STEPS_PER_EPOCH] = float(v)
    return out


def stat(values: list[float]) -> dict[str, float | int | None]:
    """mean, std (ddof 1; None for one seed), min, max and n, as the study report's cells."""
    s = aggregate(values)
    assert s is not None, "stat of no values"
    return {"mean": s.mean, "std": s.std, "min": min(s.values), "max": max(s.values), "n": s.n}


def fmt(s: dict, pct: bool = False) -> str:
    """The study report's ``mean ± std`` (in % for fractions); a single seed says so."""
    scale = 100.0 if pct else 1.0
    scaled = Stat(
        mean=s["mean"] * scale,
        std=None if s["std"] is None else s["std"] * scale,
        n=s["n"],
        values=(),
    )
    return format_stat(scaled) + (" %" if pct else "") + (" (1 seed)" if s["n"] == 1 else "")


def final_samples(run: Path, n: int = 2500) -> tuple[np.ndarray, int] | None:
    """2,500 samples of the run's last G (batch norm in inference mode) and its step."""
    from gansn.checkpoint import load_checkpoint, load_generator
    from gansn.sampling import sample

    if not (run / "checkpoints" / "last.pt").is_file():
        return None
    G, _ = load_generator(run, ema=False)
    step = int(load_checkpoint(run)["step"])
    return sample(G, n, seed=2333, batch_size=500).numpy(), step


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="pacgan_report", description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="folder with <dataset>/s<seed>/ run dirs")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument(
        "--epochs",
        type=comma_list(Int(1)),
        default="10,25,50,100,200,400",
        help="epochs for the table (where reached)",
    )
    args = p.parse_args(argv)
    if not args.root.is_dir():
        print(f"pacgan_report: error: {args.root} is not a folder of runs", file=sys.stderr)
        return 2
    if (problem := writable_dir_problem("--out", args.out.expanduser())) is not None:
        print(f"pacgan_report: error: {problem}", file=sys.stderr)
        return 2
    epochs = args.epochs

    from gansn.data import build_dataset
    from gansn.metrics.modes import mixture_modes
    from gansn.report.plots import require_matplotlib

    plt = require_matplotlib()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"pacgan_table1": PACGAN, "datasets": {}}
    md = [
        "# PacGAN's GAN baseline, reproduced with gansn",
        "",
        "Protocol: `experiment=pacgan_<dataset>` (every choice and deviation is in the preset's "
        "comments); each metric on 2,500 samples of fixed latents from G with batch norm in "
        "inference mode, every epoch (1,000 updates of batch 100); a sample is high quality "
        "within 3 std of its nearest mode; a mode is captured with >= 1 high-quality sample "
        "(PacGAN's code); reverse KL = KL(mode histogram of high-quality samples ‖ uniform). "
        "mean ± std over seeds (ddof 1).  PacGAN: Table 1, GAN row, 10 trials, 400 epochs.",
        "",
        f"Rebuild: `python scripts/pacgan_report.py {args.root} --out {args.out}` (the runs' "
        "metrics.jsonl, status.json and config.yaml suffice for the tables and trajectories; the "
        "final-sample section needs their checkpoints).",
        "",
    ]
    for ds_dir in sorted(d for d in args.root.iterdir() if d.is_dir()):
        ds = ds_dir.name
        if ds not in PACGAN:
            continue
        runs = sorted(d for d in ds_dir.iterdir() if (d / "metrics.jsonl").is_file())
        if not runs:
            continue
        series = {r.name: read_run(r) for r in runs}
        ref = PACGAN[ds]
        data = build_dataset({"name": ds, "n": 8})
        centers, std = data.centers, data.std
        rows, ds_summary = [], {"runs": {}, "at_epoch": {}, "window_before": {}}
        for e in epochs:
            vals = {k: [s[k][e] for s in series.values() if e in s[k]] for k in TAGS}
            if not vals["modes"]:
                continue
            win = {
                k: [
                    float(np.mean([s[k][j] for j in range(e - 9, e + 1) if j in s[k]]))
                    for s in series.values()
                    if e in s[k]
                ]
                for k in TAGS
            }
            at = {k: stat(v) for k, v in vals.items()}
            before = {k: stat(v) for k, v in win.items()}
            ds_summary["at_epoch"][e] = at
            ds_summary["window_before"][e] = before
            rows.append(
                f"| gansn, epoch {e} | {at['modes']['n']} | {fmt(at['modes'])} | "
                f"{fmt(at['high_quality'], True)} | {fmt(at['kl'])} | "
                f"{fmt(before['modes'])} | {fmt(before['high_quality'], True)} | "
                f"{fmt(before['kl'])} |"
            )
        m, sd = ref["modes"]
        md += [
            f"## {ds} ({ref['K']} modes)",
            "",
            "| run | seeds | modes | high quality | reverse KL | modes, mean of epochs e-9..e "
            "| high quality, e-9..e | KL, e-9..e |",
            "|---|---|---|---|---|---|---|---|",
            f"| PacGAN Table 1 (400 epochs) | 10 | {m} ± {sd} | "
            f"{ref['high_quality'][0] * 100:.1f} % | {ref['kl'][0]} | | | |",
            *rows,
            "",
            f"PacGAN's mean ± 2 std for modes: [{m - 2 * sd:.1f}, {m + 2 * sd:.1f}].",
            "",
        ]
        # trajectories
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
        for ax, key in zip(axes, TAGS):
            for name, s in series.items():
                xs = sorted(s[key])
                ax.plot(xs, [s[key][x] for x in xs], lw=0.9, label=f"gansn {name}")
            mu = ref[key][0]
            ax.axhline(mu, color="k", ls="--", lw=1, label="PacGAN (400 epochs)")
            if ref[key][1] is not None:
                ax.axhspan(mu - 2 * ref[key][1], mu + 2 * ref[key][1], color="k", alpha=0.08)
            ax.set_xlabel("epoch (1,000 updates)")
            ax.set_title(LABELS[key])
        axes[0].set_ylim(0, ref["K"] + 0.5)
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
        fig.savefig(args.out / f"trajectory_{ds}.png", dpi=110)
        plt.close(fig)
        # final samples, and the capture rule's effect on them
        finals = {}
        for r in runs:
            got = final_samples(r)
            if got is None:
                continue
            x, step = got
            veegan = mixture_modes(x, centers, std)
            fifth = mixture_modes(x, centers, std, min_count=math.ceil(len(x) / len(centers) / 5))
            finals[r.name] = (x, step, veegan, fifth)
            ds_summary["runs"][r.name] = {
                "final_step": step,
                "epochs_logged": len(series[r.name]["modes"]),
                "final_resampled": {"min_count_1": veegan, "min_count_fifth": fifth},
            }
        if finals:
            md += [
                "Final G of each run, 2,500 fresh samples (latent seed 2333), "
                "under two capture rules:",
                "",
                "| run | epoch | modes (>= 1 sample, PacGAN's code) | modes (>= N/K/5 samples) "
                "| high quality | reverse KL |",
                "|---|---|---|---|---|---|",
            ]
            for name, (_x, step, veegan, fifth) in finals.items():
                md.append(
                    f"| {name} | {step // STEPS_PER_EPOCH} | {veegan['covered']:.0f} | "
                    f"{fifth['covered']:.0f} | {veegan['high_quality'] * 100:.1f} % | "
                    f"{veegan['kl']:.3f} |"
                )
            md += ["", f"![trajectories](trajectory_{ds}.png)", f"![samples](samples_{ds}.png)", ""]
            fig, axes = plt.subplots(
                1, len(finals), figsize=(3.2 * len(finals), 3.3), constrained_layout=True
            )
            for ax, (name, (x, step, veegan, _)) in zip(np.atleast_1d(axes), finals.items()):
                ax.scatter(centers[:, 0], centers[:, 1], s=40, c="none", edgecolors="tab:red")
                ax.scatter(x[:, 0], x[:, 1], s=2, c="k", alpha=0.3)
                lim = 1.5 if ds == "ring8" else 6
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
                ax.set_aspect("equal")
                ax.set_title(
                    f"{name}, epoch {step // STEPS_PER_EPOCH}: {veegan['covered']:.0f} modes",
                    fontsize=9,
                )
            fig.savefig(args.out / f"samples_{ds}.png", dpi=110)
            plt.close(fig)
        summary["datasets"][ds] = ds_summary
    (args.out / "report.md").write_text("\n".join(md) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    run_script(main, "pacgan_report")
