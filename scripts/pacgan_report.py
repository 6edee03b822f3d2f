#!/usr/bin/env python
"""Compare gansn's reproduction of PacGAN's GAN baseline with PacGAN's Table 1.

    python scripts/pacgan_report.py docs/showcase/pacgan/logs --out docs/showcase/pacgan

reads ``<root>/<dataset>/s<seed>/metrics.jsonl`` (runs of ``experiment=pacgan_<dataset>``,
e.g. from ``scripts/pacgan_reproduce.sh``), and writes ``report.md``, ``summary.json`` and
figures to ``--out`` (and ``report.html``, the same document):

* PacGAN's row as published: mean ± standard error over 10 trials ("averaged over 10 trials
  shown with the standard error", Table 1), converted to the per-trial std SE·√10 that one
  run is compared with (:class:`gansn.study.stats.Published`);
* per epoch checkpoint, gansn's seeds as a distribution: each seed's score (the mean of
  epochs e-k+1..e, k = ``--last-k``, and the value at e), the mean with its 95 % t CI, and
  the share of seeds inside PacGAN's per-trial range (mean ± 2 per-trial std);
* Welch's test of gansn's mean against PacGAN's mean from the published summary, where
  gansn has >= 2 seeds at the epoch (PacGAN's is at 400 epochs: a shorter gansn run is
  labelled as such);
* dot plots of the per-seed scores per epoch checkpoint beside PacGAN's range, the
  per-epoch trajectories, and the final G's samples of each run with a checkpoint.

A reverse KL that is NaN (no high-quality sample) counts as diverged: shown, never averaged.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np

from gansn.cli.args import ArgumentParser, comma_list, run_script, typed
from gansn.schema import Int, writable_dir_problem
from gansn.study.stats import Published, summarize

TABLE1 = "PacGAN Table 1, GAN row, 10 trials, 400 epochs"
# (Lin, Khetan, Fanti, Oh, NeurIPS 2018), as printed: mean ± standard error over 10 trials
PACGAN = {
    "ring8": {
        "K": 8,
        "modes": Published(TABLE1, 6.3, n=10, se=0.5),
        "high_quality": Published(TABLE1, 0.982, n=10, se=0.002),
        "kl": Published(TABLE1, 0.45, n=10, se=0.09),
    },
    "grid25": {
        "K": 25,
        "modes": Published(TABLE1, 17.3, n=10, se=0.8),
        "high_quality": Published(TABLE1, 0.948, n=10, se=0.007),
        "kl": Published(TABLE1, 0.70, n=10, se=0.07),
    },
}
PUBLISHED_EPOCH = 400
TAGS = {"modes": "modes/covered", "high_quality": "modes/high_quality", "kl": "modes/kl"}
LABELS = {"modes": "modes captured", "high_quality": "high-quality samples", "kl": "reverse KL"}
STEPS_PER_EPOCH = 1000  # 100,000 points / batch 100
DEFAULT_TITLE = "PacGAN's GAN baseline, reproduced with gansn"


def read_run(run: Path) -> dict[str, dict[int, float]]:
    """``{metric: {epoch: value}}`` from a run's metrics.jsonl (epochs = step / 1000); a
    NaN the logger wrote as a string is kept as NaN."""
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
            if isinstance(v, str) and v.lower() in ("nan", "inf", "-inf"):
                v = float(v)
            if isinstance(v, (int, float)):
                out[key][step // STEPS_PER_EPOCH] = float(v)
    return out


def score(s: dict[int, float], e: int, k: int) -> float | None:
    """The mean of epochs e-k+1..e (NaN if one of them is); None if epoch e was not logged."""
    if e not in s:
        return None
    vals = [s[j] for j in range(e - k + 1, e + 1) if j in s]
    return math.nan if any(not math.isfinite(v) for v in vals) else statistics.fmean(vals)


def stat(values: list[float], pub: Published, epoch: int) -> dict:
    """Per-seed values, the mean with its 95 % t CI, the diverged count, the share of seeds
    in PacGAN's per-trial range and Welch's test against PacGAN's mean."""
    finite = [v for v in values if math.isfinite(v)]
    s = summarize(finite)
    lo, hi = pub.trial_range()
    out = {
        "values": values,
        "n": len(finite),
        "diverged": len(values) - len(finite),
        "mean": s and s.mean,
        "std": s and s.std,
        "ci": [s and s.low, s and s.high],
        "in_pacgan_trial_range": sum(lo <= v <= hi for v in finite),
        "vs_pacgan": None,
    }
    if len(finite) >= 2:
        t = pub.compare_mean(finite)
        out["vs_pacgan"] = {
            "diff": t.diff,
            "ci": [t.low, t.high],
            "p": t.p,
            "same_length": epoch == PUBLISHED_EPOCH,
        }
    return out


def _g(x: float | None, scale: float = 1.0, d: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x * scale:.{d}g}"


def fmt(st: dict, pct: bool = False) -> str:
    """``7.4 [6.9, 7.9]`` (mean, 95 % t CI; in % for fractions), ``(1 seed)`` for one."""
    sc, unit = (100.0, " %") if pct else (1.0, "")
    if st["mean"] is None:
        txt = "–"
    elif st["n"] == 1:
        txt = f"{_g(st['mean'], sc)}{unit} (1 seed)"
    else:
        txt = f"{_g(st['mean'], sc)} [{_g(st['ci'][0], sc)}, {_g(st['ci'][1], sc)}]{unit}"
    return txt + (f", {st['diverged']} NaN" if st["diverged"] else "")


def fmt_vs(st: dict, pct: bool = False) -> str:
    """gansn's mean minus PacGAN's, its 95 % CI and Welch's p."""
    v = st["vs_pacgan"]
    if v is None:
        return "–"
    sc = 100.0 if pct else 1.0
    p = "< 0.001" if v["p"] is not None and v["p"] < 0.001 else _g(v["p"], 1, 2)
    return f"{_g(v['diff'], sc, 2)} [{_g(v['ci'][0], sc, 2)}, {_g(v['ci'][1], sc, 2)}], p {p}"


def final_samples(run: Path, n: int = 2500) -> tuple[np.ndarray, int] | None:
    """2,500 samples of the run's last G (batch norm in inference mode) and its step."""
    from gansn.checkpoint import load_checkpoint, load_generator
    from gansn.sampling import sample

    if not (run / "checkpoints" / "last.pt").is_file():
        return None
    G, _ = load_generator(run, ema=False)
    step = int(load_checkpoint(run)["step"])
    return sample(G, n, seed=2333, batch_size=500).numpy(), step


def _published_line(ds: str) -> str:
    ref = PACGAN[ds]
    parts = []
    for key in TAGS:
        pub: Published = ref[key]
        lo, hi = pub.trial_range()
        pct = key == "high_quality"
        sc, unit = (100.0, " %") if pct else (1.0, "")
        parts.append(
            f"{LABELS[key]} {_g(pub.mean, sc)} ± {_g(pub.se, sc, 2)}{unit} (SE) → per-trial std "
            f"{_g(pub.trial_std, sc, 2)}{unit}, one trial within [{_g(lo, sc)}, {_g(hi, sc)}]"
        )
    return f"{TABLE1}: " + "; ".join(parts) + " (mean ± 2 per-trial std)."


def dot_plot(plt, ds: str, table: dict, out: Path) -> None:
    """Per-seed scores at each epoch checkpoint (dots), their mean and 95 % CI (bar), and
    PacGAN's mean with its per-trial range at 400 epochs (grey band)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    epochs = sorted(table)
    for ax, key in zip(axes, TAGS):
        pub: Published = PACGAN[ds][key]
        lo, hi = pub.trial_range()
        ax.axhspan(lo, hi, color="0.85", label="PacGAN: mean ± 2 per-trial std (400 ep)")
        ax.axhline(pub.mean, color="k", ls="--", lw=1, label="PacGAN mean (10 trials)")
        for i, e in enumerate(epochs):
            st = table[e][key]
            vals = [v for v in st["values"] if math.isfinite(v)]
            jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else [0.0]
            ax.scatter(i + np.asarray(jitter), vals, s=14, color="tab:blue", zorder=3)
            if st["n"] >= 2:
                err = [[st["mean"] - st["ci"][0]], [st["ci"][1] - st["mean"]]]
                ax.errorbar(
                    i + 0.3, st["mean"], yerr=err, fmt="o", color="tab:red", capsize=3, ms=4
                )
        ticks = [f"{e}\nn={table[e][key]['n']}" for e in epochs]
        ax.set_xticks(range(len(epochs)), ticks, fontsize=8)
        ax.set_xlabel("epoch checkpoint (n = seeds)")
        ax.set_title(LABELS[key])
    axes[0].set_ylim(0, PACGAN[ds]["K"] + 0.5)
    axes[1].set_ylim(0, 1.02)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    fig.suptitle(f"{ds}: per-seed scores (blue), gansn mean and 95 % CI (red)", fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def trajectory_plot(plt, ds: str, series: dict, out: Path) -> bool:
    """Each seed's metrics per epoch beside PacGAN's mean and per-trial range; the epoch
    axis is logarithmic when runs of very different lengths share it (25 epochs beside 400:
    on a linear axis the short runs are squeezed into its first twentieth).  Returns
    whether the axis is logarithmic."""
    ref = PACGAN[ds]
    lengths = [max(s["modes"]) for s in series.values() if s["modes"]]
    log_x = bool(lengths) and max(lengths) >= 4 * min(lengths)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
    for ax, key in zip(axes, TAGS):
        for name, s in series.items():
            xs = sorted(s[key])
            ax.plot(xs, [s[key][x] for x in xs], lw=0.8, label=f"gansn {name}")
        pub = ref[key]
        lo, hi = pub.trial_range()
        ax.axhline(pub.mean, color="k", ls="--", lw=1, label="PacGAN mean (400 epochs)")
        ax.axhspan(lo, hi, color="k", alpha=0.08, label="PacGAN ± 2 per-trial std")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("epoch (1,000 updates)" + (", log scale" if log_x else ""))
        ax.set_title(LABELS[key])
    axes[0].set_ylim(0, ref["K"] + 0.5)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=7, frameon=False)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return log_x


def mode_counts(x: np.ndarray, centers: np.ndarray, std: float) -> np.ndarray:
    """(K,) high-quality samples at each mode: nearest mode within 3 std, the rule of
    :func:`gansn.metrics.modes.mixture_modes` (which returns only the totals)."""
    d = np.sqrt(((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
    nearest = d.argmin(1)
    good = d[np.arange(len(x)), nearest] <= 3.0 * std
    return np.bincount(nearest[good], minlength=len(centers))


# a mode's ring colour by its high-quality samples: none, fewer than N/(5K), at least N/(5K)
MODE_COLOURS = ("tab:red", "tab:orange", "tab:green")


def samples_plot(plt, ds: str, finals: dict, centers: np.ndarray, std: float, out: Path) -> int:
    """One panel per run: its final G's samples, each mode ringed in the colour of its
    high-quality count, the count written beside it.  Returns the stricter rule's minimum
    count (N/(5K), rounded up)."""
    k = len(centers)
    cols = min(len(finals), 4)
    nrow = math.ceil(len(finals) / cols)
    fig, axes = plt.subplots(
        nrow, cols, figsize=(3.4 * cols, 3.4 * nrow + 0.4), constrained_layout=True, squeeze=False
    )
    for ax in axes.ravel()[len(finals) :]:
        fig.delaxes(ax)
    lim = 1.5 if ds == "ring8" else 6
    strict = 1
    for ax, (name, (x, step, veegan, fifth)) in zip(axes.ravel(), finals.items()):
        counts = mode_counts(x, centers, std)
        strict = max(1, math.ceil(len(x) / k / 5))
        # the counts must be the ones the table shows
        assert int((counts >= 1).sum()) == int(veegan["covered"]), (name, counts)
        ax.scatter(x[:, 0], x[:, 1], s=6, c="tab:blue", alpha=0.5, lw=0, rasterized=True)
        level = np.where(counts == 0, 0, np.where(counts < strict, 1, 2))
        for (cx, cy), c, lv in zip(centers, counts, level):
            ax.scatter(cx, cy, s=90, facecolors="none", edgecolors=MODE_COLOURS[lv], lw=1.8)
            if not c:  # a red ring says it: a column of zeros would crowd the grid
                continue
            ax.annotate(
                str(c),
                (cx, cy),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=7,
                color=MODE_COLOURS[lv] if lv < 2 else "0.2",
            )
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.set_title(
            f"{name}, epoch {step // STEPS_PER_EPOCH}: {veegan['covered']:.0f} of {k} modes "
            f"with ≥ 1 HQ sample,\n{fifth['covered']:.0f} with ≥ {strict}",
            fontsize=8,
        )
    fig.suptitle(
        f"{ds}: {len(next(iter(finals.values()))[0]):,} generated points (blue); each mode "
        f"ringed by its high-quality samples (within 3 std; their count beside it): red none, "
        f"orange 1–{strict - 1}, green ≥ {strict}",
        fontsize=9,
    )
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return strict


def _shell_word(text: str) -> str:
    """``text`` as one shell word, in double quotes where that needs no escapes (a title
    with an apostrophe reads better so than in shlex's '...'"'"'...')."""
    if shlex.quote(text) == text:
        return text
    return f'"{text}"' if not set('"$`\\!') & set(text) else shlex.quote(text)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="pacgan_report", description=__doc__.split("\n")[0])
    p.add_argument("root", type=Path, help="folder with <dataset>/s<seed>/ run dirs")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.add_argument(
        "--epochs",
        type=comma_list(Int(1)),
        default="10,25,50,100,200,400",
        help="epoch checkpoints for the tables (where reached)",
    )
    p.add_argument(
        "--last-k",
        type=typed(Int(1), int),
        default=3,
        help="a seed's score: the mean of its last K epochs",
    )
    p.add_argument("--title", default=DEFAULT_TITLE, help="report title")
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="folder with <dataset>/s<seed>/checkpoints/last.pt for the final-sample section "
        "(default: the root's run dirs)",
    )
    args = p.parse_args(argv)
    if not args.root.is_dir():
        print(f"pacgan_report: error: {args.root} is not a folder of runs", file=sys.stderr)
        return 2
    if (problem := writable_dir_problem("--out", args.out.expanduser())) is not None:
        print(f"pacgan_report: error: {problem}", file=sys.stderr)
        return 2
    epochs, k = args.epochs, args.last_k

    from gansn.data import build_dataset
    from gansn.metrics.modes import mixture_modes
    from gansn.report.plots import require_matplotlib
    from gansn.report.render import Document, to_html, to_markdown

    plt = require_matplotlib()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "pacgan_table1": {
            ds: {key: vars(ref[key]) for key in TAGS} | {"K": ref["K"]}
            for ds, ref in PACGAN.items()
        },
        "last_k": k,
        "datasets": {},
    }
    root = args.root.as_posix()
    doc = Document(args.title)
    doc.para(
        "Protocol: `experiment=pacgan_<dataset>` (every choice and deviation is in the preset's "
        "comments and PROTOCOL.md); each metric on 2,500 samples of fixed latents from G with "
        "batch norm in inference mode, every epoch (1,000 updates of batch 100); a sample is "
        "high quality within 3 std of its nearest mode; a mode is captured with >= 1 "
        "high-quality sample (PacGAN's code); reverse KL = KL(mode histogram of high-quality "
        "samples ‖ uniform)."
    )
    doc.para(
        f"Statistics: a seed's score at epoch e is the mean of epochs e-{k - 1}..e (one epoch's "
        "value is noisy; the value at e is in the second table); cells give the mean over "
        "seeds and its 95 % Student-t confidence interval. PacGAN's ± is a standard error over "
        "10 trials, so one trial's spread is SE·√10: a single gansn seed is compared with that "
        "per-trial range, and gansn's mean with PacGAN's mean (Welch's test from the published "
        "summary; 'vs PacGAN' = gansn minus PacGAN, 95 % CI, p). PacGAN's numbers are at 400 "
        "epochs: at any other epoch the difference mixes training length with the method."
    )
    title = "" if args.title == DEFAULT_TITLE else f" --title {_shell_word(args.title)}"
    doc.para(
        f"Rebuild: `python scripts/pacgan_report.py {root} --out {args.out.as_posix()}{title}` "
        "(the runs' metrics.jsonl suffice for the tables, dot plots and trajectories; the "
        "final-sample section needs their checkpoints, which are not committed: "
        "`--checkpoints <folder of the run dirs>`)."
    )
    for ds_dir in sorted(d for d in args.root.iterdir() if d.is_dir()):
        ds = ds_dir.name
        if ds not in PACGAN:
            continue
        runs = sorted(
            (d for d in ds_dir.iterdir() if (d / "metrics.jsonl").is_file()),
            key=lambda d: int(d.name.lstrip("s")) if d.name.lstrip("s").isdigit() else 1 << 30,
        )
        if not runs:
            continue
        series = {r.name: read_run(r) for r in runs}
        ref = PACGAN[ds]
        data = build_dataset({"name": ds, "n": 8})
        centers, std = data.centers, data.std
        table, at_table = {}, {}
        ds_summary: dict = {"seeds": list(series), "runs": {}, "score": {}, "at_epoch": {}}
        for e in epochs:
            have = [n for n, s in series.items() if e in s["modes"]]
            if not have:
                continue
            table[e] = {
                key: stat([score(series[n][key], e, k) for n in have], ref[key], e) for key in TAGS
            }
            at_table[e] = {
                key: stat([series[n][key][e] for n in have], ref[key], e) for key in TAGS
            }
            for key in TAGS:
                table[e][key]["seeds"] = at_table[e][key]["seeds"] = have
            ds_summary["score"][e] = table[e]
            ds_summary["at_epoch"][e] = at_table[e]
        doc.heading(f"{ds} ({ref['K']} modes)")
        doc.para(_published_line(ds))
        head = [
            "epoch",
            "seeds",
            "modes",
            "in PacGAN's trial range",
            "vs PacGAN",
            "high quality",
            "vs PacGAN",
            "reverse KL",
            "vs PacGAN",
        ]
        for caption, tab in (
            (f"Score = mean of epochs e-{k - 1}..e", table),
            ("Value at epoch e (as PacGAN reports its last epoch)", at_table),
        ):
            rows = []
            for e, row in tab.items():
                m = row["modes"]
                rows.append(
                    [
                        str(e),
                        str(m["n"] + m["diverged"]),
                        fmt(m),
                        f"{m['in_pacgan_trial_range']} of {m['n']}",
                        fmt_vs(m),
                        fmt(row["high_quality"], True),
                        fmt_vs(row["high_quality"], True),
                        fmt(row["kl"]),
                        fmt_vs(row["kl"]),
                    ]
                )
            doc.table(head, rows, caption=caption)
        # the per-seed scores at the checkpoint most seeds reached (the latest of those)
        last = max(table, key=lambda e: (table[e]["modes"]["n"], e)) if table else None
        if last is not None:
            rows = []
            for i, name in enumerate(table[last]["modes"]["seeds"]):
                vals = [table[last][key]["values"][i] for key in TAGS]
                rows.append([name, _g(vals[0]), f"{_g(vals[1], 100)} %", _g(vals[2])])
            doc.table(
                ["seed", "modes", "high quality", "reverse KL"],
                rows,
                caption=f"Per-seed scores at epoch {last} (mean of epochs {last - k + 1}..{last})",
            )
        dot_plot(plt, ds, table, args.out / f"seeds_{ds}.png")
        doc.figure(
            f"seeds_{ds}.png",
            f"{ds}: each seed's score (blue dots, mean of its last {k} epochs) at each epoch "
            "checkpoint it reached, gansn's mean and 95 % CI (red), PacGAN's mean at 400 epochs "
            "(dashed) and one trial's range, mean ± 2 per-trial std (grey).",
        )
        log_x = trajectory_plot(plt, ds, series, args.out / f"trajectory_{ds}.png")
        doc.figure(
            f"trajectory_{ds}.png",
            f"{ds}: each seed's value at every epoch, one line per seed, beside PacGAN's mean "
            "(dashed) and per-trial range (grey)"
            + ("; the epoch axis is logarithmic, as the runs differ in length." if log_x else "."),
        )
        # final samples, and the capture rule's effect on them
        finals = {}
        ckpt_root = args.checkpoints or args.root
        for r in runs:
            got = final_samples(ckpt_root / ds / r.name)
            if got is None:
                continue
            x, step = got
            veegan = mixture_modes(x, centers, std)
            fifth = mixture_modes(x, centers, std, convention="fifth_of_uniform")
            finals[r.name] = (x, step, veegan, fifth)
            ds_summary["runs"][r.name] = {
                "final_step": step,
                "epochs_logged": len(series[r.name]["modes"]),
                "final_resampled": {"min_count_1": veegan, "fifth_of_uniform": fifth},
            }
        if finals:
            doc.para(
                "Final G of each run with a checkpoint, 2,500 fresh samples (latent seed 2333). "
                "Beside PacGAN's capture rule (>= 1 high-quality sample) a stricter one, not "
                "PacGAN's: >= 1/5 of the N/K samples a uniform generator would give a mode."
            )
            doc.table(
                [
                    "run",
                    "epoch",
                    "modes (>= 1 sample, PacGAN's code)",
                    "modes (>= N/(5K), stricter)",
                    "high quality",
                    "reverse KL",
                ],
                [
                    [
                        name,
                        str(step // STEPS_PER_EPOCH),
                        f"{veegan['covered']:.0f}",
                        f"{fifth['covered']:.0f}",
                        f"{veegan['high_quality'] * 100:.1f} %",
                        f"{veegan['kl']:.3f}",
                    ]
                    for name, (_x, step, veegan, fifth) in finals.items()
                ],
            )
            strict = samples_plot(plt, ds, finals, centers, std, args.out / f"samples_{ds}.png")
            doc.figure(
                f"samples_{ds}.png",
                f"{ds}: 2,500 samples of each run's final G (blue). Each mode is ringed in the "
                "colour of its high-quality samples (within 3 std of it; their count is written "
                f"beside it where there are any): red none, orange 1 to {strict - 1} (captured "
                f"by PacGAN's rule, not by the stricter one), green {strict} or more. A mode's "
                "3-std disc is far smaller than its ring, so an orange ring can look empty: the "
                "count says how many samples are there.",
            )
        summary["datasets"][ds] = ds_summary
    (args.out / "report.md").write_text(to_markdown(doc))
    (args.out / "report.html").write_text(to_html(doc))
    text = json.dumps(_clean(summary), indent=1, default=str, allow_nan=False)
    (args.out / "summary.json").write_text(text + "\n")
    print(f"wrote {args.out / 'report.md'} and report.html")
    return 0


def _clean(o: object) -> object:
    """JSON has no NaN: a NaN score (a diverged seed) is written as null."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


if __name__ == "__main__":
    run_script(main, "pacgan_report")
