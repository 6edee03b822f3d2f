"""Assemble the report folder: tables, figures, commands, machine, summary.json."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import platform
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch

import gansn
from gansn.metrics.core import metric_tags
from gansn.report import plots as plotting
from gansn.report.aggregate import Setting, Study, build_study, format_stat, format_value, label
from gansn.report.aggregate import short_key as _short
from gansn.report.collect import collect_runs, sweep_axes, sweep_commands
from gansn.report.render import (
    Bullets,
    Cell,
    Code,
    Document,
    Figure,
    Heading,
    Para,
    Table,
    to_html,
    to_markdown,
)

log = logging.getLogger(__name__)

# The curve plotted per setting: the first of these any run logged.
# A sweep too short to evaluate anything still gets its D loss plotted.
MAIN_METRICS = (
    "metrics/fid",
    "modes/kl",
    *(t for t, i in metric_tags().items() if i.table),
    "loss/d",
)
# protocol entries that differ between runs without making their numbers incomparable
_PROTOCOL_NOISE = ("seconds", "seed", "cache", "cache_file")
_LEGEND = (
    "Mean ± std over seeds (sample std, ddof=1; no ± for one seed); n = seeds used, excl. = "
    "failed or metric-less runs left out. final = last logged value, best = best logged value "
    "over training. Bold = best per column (lower is better for FID, KID and KL; higher for "
    "the rest; ties all bold); Lipschitz bounds are not ranked."
)


class NoRunsError(FileNotFoundError):
    """The sweep dir holds no run dir."""


def machine_info() -> dict[str, Any]:
    """Where the report was built: platform, CPU model, cores, Python, torch, gansn."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")  # Linux only
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("model name")), cpu
    )
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gansn": gansn.__version__,
    }


def _seconds(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.2f} h"


def _figures(
    setting: Setting, out: Path, checkpoints: bool
) -> tuple[list[Figure], list[dict[str, str]], list[str]]:
    """Draw the figures that apply to ``setting``: the figures, those that failed or had no
    data (and why), and notes on those that cannot apply."""
    have = {t for r in setting.runs if r.contributes for t in r.series}
    main = next((t for t in MAIN_METRICS if t in have), None)
    plan = [
        (t.replace("/", "_"), f"{label(t)} vs step", partial(plotting.curves_figure, tag=t))
        for t in dict.fromkeys([main, "modes/covered"])
        if t in have
    ]
    if any(t.startswith("lipschitz/") for t in have):
        plan.append(("lipschitz", "Lipschitz bracket", plotting.lipschitz_figure))
    notes = []
    _, picked = plotting.pick_runs(setting, lambda r: r.checkpoint is not None)
    if checkpoints and not picked:
        notes.append("Singular value spectra: no checkpoints/last.pt in any run.")
    elif checkpoints:
        plan.append(("spectra", "singular value spectra", plotting.spectra_figure))
        if any(str((r.config.get("model") or {}).get("name")) == "mlp" for _, r in picked):
            plan.append(("points", "generated points", plotting.points_figure))
    if any(r.final_samples for row in setting.rows for r in row.used):
        plan.append(("samples", "sample montage", plotting.samples_figure))
    else:
        notes.append("Sample montage: no samples/final.png in any run.")

    figures, missing = [], []
    for stem, what, draw in plan:
        path = out / f"fig_{setting.id}_{stem}.png"
        try:
            caption = draw(setting, path)
        except Exception as err:  # one broken figure must not cost the whole report
            log.warning("figure %s for %s failed: %s", stem, setting.label, err)
            caption, err_text = None, str(err)
        else:
            err_text = "no data logged for it"
        if caption is None:
            missing.append({"setting": setting.id, "figure": what, "reason": err_text})
        else:
            figures.append(Figure(path.name, caption))
    return figures, missing, notes


def _results_table(setting: Setting) -> Table:
    rows: list[list[Cell | str]] = []
    for row in setting.rows:
        n = str(len(row.used)) + (f" (+{len(row.excluded)} excl.)" if row.excluded else "")
        rows.append(
            [row.label, n, ", ".join(map(format_value, row.seeds))]
            + [
                Cell(format_stat(row.stats[c.id]), row.label in setting.best[c.id])
                for c in setting.columns
            ]
        )
    return Table(["Norm", "n", "Seeds", *(c.label for c in setting.columns)], rows)


def _protocol_text(setting: Setting) -> str | None:
    protos = sorted(
        {
            json.dumps(
                {k: v for k, v in r.protocol.items() if k not in _PROTOCOL_NOISE}, sort_keys=True
            )
            for r in setting.runs
            if r.contributes and r.protocol
        }
    )
    txt = "; ".join(
        ", ".join(f"{k}={format_value(v)}" for k, v in json.loads(p).items()) for p in protos
    )
    if len(protos) > 1:
        return f"Metric protocols DIFFER between runs — numbers are not comparable: {txt}"
    return f"Metric protocol: {txt}" if protos else None


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set):
        return [_jsonable(v) for v in x]
    return x if isinstance(x, str | int | bool) or x is None else str(x)


def _summary(study: Study, figures: dict[str, list[str]], **head: Any) -> dict[str, Any]:
    """summary.json: every number of the tables, with the runs behind it."""
    settings = [
        {
            "id": s.id,
            "label": s.label,
            "values": s.values,
            "columns": [asdict(c) for c in s.columns],
            "best": {k: sorted(v) for k, v in s.best.items()},
            "rows": [
                {
                    "norm": row.label,
                    "values": row.values,
                    "n": len(row.used),
                    "seeds": row.seeds,
                    "runs": [r.rel for r in row.used],
                    "excluded_runs": [r.rel for r in row.excluded],
                    "metrics": {
                        c.id: row.stats[c.id] and asdict(row.stats[c.id]) for c in s.columns
                    },
                }
                for row in s.rows
            ],
            "figures": figures.get(s.id, []),
        }
        for s in study.settings
    ]
    runs = [
        {
            "dir": r.rel,
            "status": r.status,
            "step": r.step,
            "error": r.error,
            "wall_time_s": r.wall_time_s,
            "contributes": r.contributes,
            "seed": r.seed,
            "overrides": r.overrides,
            "metric_lines": r.n_lines,
            "warnings": r.warnings,
            "varying": {a.key: a.value(r) for a in study.axes},
        }
        for r in study.runs
    ]
    return _jsonable(
        {
            **head,
            "varying_keys": [a.key for a in study.axes],
            "row_keys": study.row_keys,
            "setting_keys": study.setting_keys,
            "directions": {t: i.direction for t, i in metric_tags().items() if i.direction},
            "settings": settings,
            "runs": runs,
            "failed": [x for x in runs if not x["contributes"]],
            "total_wall_time_s": sum(r.wall_time_s or 0.0 for r in study.runs),
        }
    )


def _setting_section(doc: Document, setting: Setting, many: bool) -> None:
    doc.add(
        Heading(
            f"Setting {setting.index}: {setting.label}" if many else f"Results: {setting.label}"
        )
    )
    if setting.values and setting.full_label != setting.label:
        doc.add(Para(f"Configuration: {setting.full_label}"))
    if not setting.columns:
        doc.add(
            Para(
                "No evaluation metrics (FID, KID, P/R, modes) or Lipschitz bounds "
                "were logged by any usable run of this setting."
            )
        )
    doc.add(_results_table(setting), Para(_LEGEND))
    proto = _protocol_text(setting)
    if proto:
        doc.add(Para(proto))
    incomplete = [r.rel for r in setting.runs if r.contributes and r.status != "completed"]
    if incomplete:
        doc.add(Para("Not completed (their last logged values are used): " + ", ".join(incomplete)))


def build_report(
    sweep_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    plots: bool = True,
    checkpoint_figures: bool = True,
    embed_images: bool = False,
) -> Path:
    """Aggregate the sweep in ``sweep_dir`` into a report folder and return that folder.

    Writes ``report.md``, ``report.html``, ``summary.json`` and ``fig_*.png`` into
    ``out_dir`` (default ``<sweep_dir>/report``).  ``plots=False`` skips every figure (no
    matplotlib needed); ``checkpoint_figures=False`` skips those that load checkpoints
    (spectra, toy points).  ``embed_images`` inlines the PNGs into the HTML.

    Raises ``FileNotFoundError`` (``NoRunsError``) if there is no run dir, and
    ``ReportDependencyError`` if ``plots`` and matplotlib is not installed.
    """
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep} does not exist")
    out = Path(out_dir) if out_dir is not None else sweep / "report"
    if plots:
        plotting.require_matplotlib()  # fail before any work, with the install command
    runs = collect_runs(sweep, exclude=(out,))
    if not runs:
        raise NoRunsError(
            f"no run dirs under {sweep} (a run dir holds .hydra/config.yaml, config.yaml, "
            "metrics.jsonl or checkpoints/)"
        )
    out.mkdir(parents=True, exist_ok=True)
    study = build_study(runs, sweep_axes(sweep, runs))
    title = title or f"Normalization study: {sweep.resolve().name}"
    sweep_cmd, run_cmds = sweep_commands(sweep, runs)

    doc = Document(title)
    n_ok = sum(r.contributes for r in runs)
    doc.add(
        Para(
            f"Sweep {sweep.resolve()} — {len(runs)} runs, {n_ok} used in the tables, "
            f"{len(runs) - n_ok} excluded (failed or without metrics), "
            f"{len(study.settings)} setting(s). Report by gansn {gansn.__version__}, "
            f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}."
        ),
        Bullets(
            [
                f"Rows (normalization): {', '.join(map(_short, study.row_keys)) or '—'}",
                f"Tables (settings): {', '.join(map(_short, study.setting_keys)) or '—'}",
                "Aggregated over: seed",
            ]
        ),
    )
    if sweep_cmd:
        doc.add(Heading("Command"), Code(sweep_cmd))

    figures: dict[str, list[str]] = {}
    missing: list[dict[str, str]] = []
    for s in study.settings:
        _setting_section(doc, s, many=len(study.settings) > 1)
        if plots:
            blocks, gone, notes = _figures(s, out, checkpoint_figures)
            doc.add(*blocks)
            figures[s.id], missing = [f.path for f in blocks], missing + gone
            if gone or notes:
                why = [f"{m['figure']} ({m['reason']})" for m in gone] + notes
                doc.add(Para("Figures not drawn: " + "; ".join(why)))
    if not plots:
        doc.add(Para("Figures were not drawn (--no-plots)."))

    doc.add(Heading("Failed runs"))
    failed = [
        [
            r.rel,
            r.status,
            format_value(r.step),
            r.error or ("—" if r.series else "no metrics logged"),
        ]
        for r in runs
        if not r.contributes
    ]
    if failed:
        doc.add(Table(["Run dir", "Status", "Step", "Error"], failed))
    else:
        doc.add(Para("None: every run completed with metrics."))
    axes, total = study.axes, sum(r.wall_time_s or 0.0 for r in runs)
    doc.add(
        Heading("Runs"),
        Table(
            ["Run dir", *(_short(a.key) for a in axes), "Status", "Step", "Wall time"],
            [
                [
                    r.rel,
                    *(format_value(a.value(r)) for a in axes),
                    r.status,
                    format_value(r.step),
                    _seconds(r.wall_time_s),
                ]
                for r in runs
            ],
            caption="Config keys that vary across the sweep, per run.",
        ),
        Para(f"Total wall time: {_seconds(total)} over {len(runs)} runs."),
    )
    if run_cmds:
        doc.add(
            Heading("Per-run commands", 3),
            Code("\n".join(f"{cmd}  # {rel}" for rel, cmd in run_cmds)),
        )
    warnings = [f"{r.rel}: {w}" for r in runs for w in r.warnings]
    if warnings:
        doc.add(Heading("Warnings", 3), Bullets(warnings))
    machine = machine_info()
    doc.add(
        Heading("Machine"),
        Para(
            "Where this report was built (the run directories do not record the training machine)."
        ),
        Table(["", ""], [[k, format_value(v)] for k, v in machine.items()]),
    )

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    summary = _summary(study, figures, title=title, sweep_dir=str(sweep), generated_at=now)
    summary |= {"command": sweep_cmd, "missing_figures": missing, "machine": machine}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(to_markdown(doc))
    (out / "report.html").write_text(to_html(doc, root=out, embed_images=embed_images))
    log.info("report written to %s", out)
    return out
