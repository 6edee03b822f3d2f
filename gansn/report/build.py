"""Assemble the report folder: tables, figures, commands, machine, summary.json."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch

import gansn
from gansn.errors import ConfigError, did_you_mean
from gansn.metrics.core import metric_tags
from gansn.report import plots as plotting
from gansn.report import points, spectra
from gansn.report.aggregate import (
    Setting,
    Study,
    build_study,
    format_stat,
    format_values,
    label,
)
from gansn.report.aggregate import short_key as _short
from gansn.report.collect import Run, canon, collect_runs, sweep_axes, sweep_commands
from gansn.report.render import Cell, Document, format_value, to_html, to_markdown
from gansn.report.spectra import BREADTH_FILE
from gansn.schema import STUDY, complete
from gansn.study.verdicts import Claim, Verdict, judge_summary, parse_claims
from gansn.study.verdicts import as_dict as verdict_dict
from gansn.study.verdicts import render as render_verdicts

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
    "Mean over seeds [95 % confidence interval of the mean: Student t, mean ± t(n-1)·s/√n; "
    "none for one seed]; n = seeds used, excl. = failed or metric-less runs left out. final "
    "= the mean of a run's last {k} evaluations (its last value alone is in summary.json as "
    "'last'), best = its best logged value over training. 'k diverged (step s)': runs whose "
    "value was NaN/Inf at step s (a loss that went NaN stops training; a mode KL with no "
    "high-quality sample is NaN): counted, never averaged or replaced by an earlier value. "
    "Bold = the one row whose mean, as shown, is better than every other row's "
    "(lower is better for FID, KID and KL; higher for the rest); no bold on a tie for best or "
    "where every row has the same mean; Lipschitz bounds are not ranked. A metric computed in "
    "a feature space names it in its header (FID of classifier features and FID of Inception "
    "features are different numbers)."
)
# Three tables, not one of ~21 columns that runs off a 1,600 px screen: the final scores (what
# the verdicts test), the best values over training and the Lipschitz bounds, by column kind
# ("last" is in summary.json only).
_TABLES = (
    (
        "final",
        "Final scores: each run's mean of its last {k} evaluations; mean over seeds [95 % CI].",
    ),
    ("best", "Best value of each run over training; mean over seeds [95 % CI]."),
    (
        "lip_",
        "D's Lipschitz constant at the last measurement: the operator-norm upper bound and the "
        "largest empirical lower bound; mean over seeds [95 % CI], not ranked.",
    ),
)


def machine_info() -> dict[str, Any]:
    """Where the report was built: platform, CPU model, cores, Python, torch, gansn."""
    cpuinfo = Path("/proc/cpuinfo")  # Linux only
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    models = [ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("model name")]
    return {
        "platform": platform.platform(),
        "cpu": models[0] if models else platform.processor() or platform.machine(),
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
    doc: Document,
    setting: Setting,
    out: Path,
    checkpoints: bool,
    curves: Sequence[str] = (),
) -> tuple[list[str], list[dict[str, str]]]:
    """Draw the figures that apply to ``setting`` into ``doc``, and say there why any other
    is missing; return the files drawn and those that failed or had no data (and why).
    ``curves``: more logged tags to draw against the step, after the main metric's."""
    used = [r for row in setting.rows for r in row.used]
    have = {t for r in used for t in r.series}
    main = next((t for t in MAIN_METRICS if t in have), None)
    plan = [
        (t.replace("/", "_"), f"{label(t)} vs step", partial(plotting.curves_figure, tag=t))
        for t in dict.fromkeys([main, "modes/covered", *curves])
        if t in have
    ]
    notes = [f"{t} vs step: no run logged {t}." for t in curves if t not in have]
    if any(t.startswith("lipschitz/") for t in have):
        plan.append(("lipschitz", "Lipschitz bracket", plotting.lipschitz_figure))
    with_ckpt = [r for r in used if r.checkpoint]
    if checkpoints and not with_ckpt:
        notes.append("Singular value spectra: no checkpoints/last.pt in any run.")
    elif checkpoints:
        plan.append(("spectra", "singular value spectra", spectra.spectra_figure))
        if any(r.flat.get("model.name") == "mlp" for r in with_ckpt):
            plan.append(("points", "generated points", points.points_figure))
    if any(r.final_samples for r in used):
        plan.append(("samples", "sample montage", points.samples_figure))
    else:
        notes.append("Sample montage: no samples/final.png in any run.")

    drawn, missing = [], []
    for stem, what, draw in plan:
        path = out / f"fig_{setting.id}_{stem}.png"
        try:
            caption, why = draw(setting, path), "no data logged for it"
        except plotting.NoInformation as err:  # nothing a reader could learn from it
            caption, why = None, str(err)
        except Exception as err:  # one broken figure must not cost the whole report
            log.warning("figure %s for %s failed: %s", stem, setting.label, err)
            caption, why = None, str(err)
        if caption is None:
            missing.append({"setting": setting.id, "figure": what, "reason": why})
        else:
            doc.figure(path.name, caption)
            drawn.append(path.name)
    if missing or notes:
        why = [f"{m['figure']} ({m['reason']})" for m in missing] + notes
        doc.para("Figures not drawn: " + "; ".join(why))
    return drawn, missing


def portable(x: Any) -> Any:
    """``x`` with every absolute path cut to its last part (``…/fashion_mnist-….pt``): a
    committed report names no folder of the machine that built it."""
    if isinstance(x, str) and os.path.isabs(x) and len(x) > 1:
        return "…/" + Path(x).name
    if isinstance(x, str) and "=/" in x:  # an override: hydra.sweep.dir=/abs/path
        key, _, value = x.partition("=")
        return f"{key}={portable(value)}"
    if isinstance(x, dict):
        return {k: portable(v) for k, v in x.items()}
    return [portable(v) for v in x] if isinstance(x, list | tuple) else x


def _protocol_text(setting: Setting) -> str | None:
    protos = {
        canon({k: portable(v) for k, v in r.protocol.items() if k not in _PROTOCOL_NOISE})
        for r in setting.runs
        if r.contributes and r.protocol
    }
    txt = "; ".join(format_values(json.loads(p)) for p in sorted(protos))
    if len(protos) > 1:
        return f"Metric protocols DIFFER between runs — numbers are not comparable: {txt}"
    return f"Metric protocol: {txt}" if protos else None


def _setting_section(doc: Document, setting: Setting, many: bool, k: int) -> None:
    doc.heading(
        f"Setting {setting.index}: {setting.label}" if many else f"Results: {setting.label}"
    )
    if setting.values and setting.full_label != setting.label:
        doc.para(f"Configuration: {setting.full_label}")
    if not setting.columns:
        doc.para(
            "No evaluation metrics (FID, KID, P/R, modes) or Lipschitz bounds "
            "were logged by any usable run of this setting."
        )
    for i, (kind, caption) in enumerate(_TABLES):
        cols = [c for c in setting.columns if c.kind.startswith(kind)]
        if i and not cols:
            continue
        heads = ["Norm", "n", "Seeds"][: 3 if i == 0 else 1]
        rows = []
        for row in setting.rows:
            n = str(len(row.used)) + (f" (+{len(row.excluded)} excl.)" if row.excluded else "")
            keys = [row.label, n, ", ".join(map(format_value, row.seeds))][: len(heads)]
            best = [row.label in setting.best[c.id] for c in cols]
            rows.append(keys + [Cell(format_stat(row.stats[c.id]), b) for c, b in zip(cols, best)])
        doc.table([*heads, *(c.header for c in cols)], rows, caption.format(k=k) if cols else "")
    doc.para(_LEGEND.format(k=k))
    proto = _protocol_text(setting)
    if proto:
        doc.para(proto)
    incomplete = [r.rel for r in setting.runs if r.contributes and r.status != "completed"]
    if incomplete:
        doc.para("Not completed (their last logged values are used): " + ", ".join(incomplete))


def _runs_section(doc: Document, study: Study, run_cmds: list[tuple[str, str]]) -> None:
    runs, axes = study.runs, study.axes
    doc.heading("Failed runs")
    failed = [
        [r.rel, r.status, r.step, r.error or ("—" if r.series else "no metrics logged")]
        for r in runs
        if not r.contributes
    ]
    if failed:
        doc.table(["Run dir", "Status", "Step", "Error"], failed)
    else:
        doc.para("None: every run completed with metrics.")
    doc.heading("Runs")
    doc.table(
        ["Run dir", *(_short(a.key) for a in axes), "Status", "Step", "Wall time"],
        [
            [r.rel, *(a.value(r) for a in axes), r.status, r.step, _seconds(r.wall_time_s)]
            for r in runs
        ],
        caption="Config keys that vary across the sweep, per run.",
    )
    total = sum(r.wall_time_s or 0.0 for r in runs)
    doc.para(f"Total wall time: {_seconds(total)} over {len(runs)} runs.")
    if run_cmds:
        doc.heading("Per-run commands", 3)
        doc.code("\n".join(f"{cmd}  # {rel}" for rel, cmd in run_cmds))
    warnings = [f"{r.rel}: {w}" for r in runs for w in r.warnings]
    if warnings:
        doc.heading("Warnings", 3)
        doc.bullets(warnings)


def _strict(x: Any) -> Any:
    """``x`` with NaN and inf as None: JSON has neither, and an axis can be ``inf``."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    return [_strict(v) for v in x] if isinstance(x, list | tuple) else x


def _run_summary(run: Run, study: Study) -> dict[str, Any]:
    return {
        "dir": run.rel,
        "status": run.status,
        "step": run.step,
        "error": run.error,
        "wall_time_s": run.wall_time_s,
        "contributes": run.contributes,
        "seed": run.seed,
        "overrides": run.overrides,
        "metric_lines": run.n_lines,
        "warnings": run.warnings,
        "varying": {a.key: a.value(run) for a in study.axes},
    }


def _setting_summary(s: Setting, figures: list[str]) -> dict[str, Any]:
    rows = [
        {
            "norm": row.label,
            "values": row.values,
            "n": len(row.used),
            "seeds": row.seeds,
            "runs": [r.rel for r in row.used],
            "excluded_runs": [r.rel for r in row.excluded],
            "metrics": {c.id: row.stats[c.id] and asdict(row.stats[c.id]) for c in s.columns},
        }
        for row in s.rows
    ]
    return {
        "id": s.id,
        "label": s.label,
        "values": s.values,
        "columns": [asdict(c) for c in s.columns],
        "best": {k: sorted(v) for k, v in s.best.items()},
        "rows": rows,
        "figures": figures,
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError) as err:
        log.warning("cannot read %s: %s", path, err)
        return None


def study_config(runs: Sequence[Run]) -> dict[str, Any]:
    """The ``study`` key (last_k, claims) the runs were configured with: the study preset's,
    each key it lacks at its declared default.  Runs that disagree (sweeps of two presets in
    one folder) give the defaults."""
    found = {canon(r.config.get("study")) for r in runs if r.config.get("study")}
    return complete(json.loads(found.pop()) if len(found) == 1 else {}, STUDY)


_TITLE_KEYS = ("dataset.name", "model.name")


def default_title(sweep: Path, runs: Sequence[Run]) -> str:
    """A title from what the runs were configured with: the experiment preset they share
    (``experiment=norm_study_fmnist``) and their dataset and model, e.g. "Normalization study:
    norm_study_fmnist (fashion_mnist, dcgan)"; the sweep folder's name only when the runs
    name neither (a folder called ``logs`` or ``multirun`` says nothing)."""

    def common(values: Iterable[Any]) -> str | None:
        found = {str(v) for v in values if v not in (None, "")}
        return found.pop() if len(found) == 1 else None

    experiment = common(r.choices.get("experiment") for r in runs)
    what = ", ".join(filter(None, (common(r.flat.get(k) for r in runs) for k in _TITLE_KEYS)))
    if experiment:
        return f"Normalization study: {experiment}" + (f" ({what})" if what else "")
    return f"Normalization study: {what or sweep.resolve().name}"


def _verdict_section(doc: Document, verdicts: Sequence[Verdict]) -> None:
    doc.heading("Verdicts on the declared claims")
    for kind, what in render_verdicts(verdicts):
        if kind == "heading":
            doc.heading(what, 3)
        elif kind == "para":
            doc.para(what)
        else:
            doc.table(*what)


def build_report(
    sweep_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    plots: bool = True,
    checkpoint_figures: bool = True,
    embed_images: bool = False,
    curves: Sequence[str] = (),
    last_k: int | None = None,
    claims: Sequence[Claim] | None = None,
) -> Path:
    """Aggregate the sweep in ``sweep_dir`` into a report folder and return that folder.

    Writes ``report.md``, ``report.html``, ``summary.json`` and ``fig_*.png`` into
    ``out_dir`` (default ``<sweep_dir>/report``).  ``plots=False`` skips every figure (no
    matplotlib needed); ``checkpoint_figures=False`` skips those that load checkpoints
    (spectra, toy points).  ``embed_images`` inlines the PNGs into the HTML.  ``curves``
    names more logged tags (e.g. ``metrics/recall``) to draw against the step.
    ``last_k``: evaluations averaged into a run's final score, and ``claims``: the claims to
    judge (:mod:`gansn.study.verdicts`); both default to the runs' ``study`` config key (the
    study preset's), else the key's defaults (``gansn.schema.STUDY``: 3, no claims).

    Paths in the report are relative to ``sweep_dir``: a committed report names no folder of
    the machine that built it.

    Raises ``FileNotFoundError`` if there is no run dir, and
    ``ReportDependencyError`` if ``plots`` and matplotlib is not installed.
    """
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise FileNotFoundError(f"sweep dir {sweep} does not exist")
    out = Path(out_dir) if out_dir is not None else sweep / "report"
    if plots:
        plotting.require_matplotlib()  # fail before any work, with the install command
    runs = collect_runs(sweep)
    if not runs:
        raise FileNotFoundError(
            f"no run dirs under {sweep} (a run dir holds .hydra/config.yaml, config.yaml, "
            "metrics.jsonl or checkpoints/)"
        )
    logged = {t for r in runs for t in r.series}
    for tag in curves:
        if tag not in logged:
            raise ConfigError(
                f"curves: no run under {sweep} logged {tag!r}"
                f"{did_you_mean(tag, sorted(logged), 'logged tags')}"
            )
    declared = study_config(runs)
    if last_k is None:
        last_k = int(declared["last_k"])
    if claims is None:
        claims = parse_claims(declared["claims"], "the runs' study.claims")
    out.mkdir(parents=True, exist_ok=True)
    study = build_study(runs, sweep_axes(sweep, runs), last_k)
    title = title or default_title(sweep, runs)
    sweep_cmd, run_cmds = sweep_commands(sweep, runs)

    doc = Document(title)
    n_ok = sum(r.contributes for r in runs)
    doc.para(
        f"Sweep {sweep.resolve().name} — {len(runs)} runs, {n_ok} used in the tables, "
        f"{len(runs) - n_ok} excluded (failed or without metrics), "
        f"{len(study.settings)} setting(s). Report by gansn {gansn.__version__}, "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}."
    )
    doc.bullets(
        [
            f"Rows (normalization): {', '.join(map(_short, study.row_keys)) or '—'}",
            f"Tables (settings): {', '.join(map(_short, study.setting_keys)) or '—'}",
            "Aggregated over: seed",
        ]
    )
    if sweep_cmd:
        doc.heading("Commands (one per sweep)" if "\n" in sweep_cmd else "Command")
        doc.code(sweep_cmd)

    figures: dict[str, list[str]] = {}
    missing: list[dict[str, str]] = []
    breadth: dict[str, dict[str, Any]] = {}
    saved_breadth = _read_json(sweep / BREADTH_FILE)
    for s in study.settings:
        _setting_section(doc, s, many=len(study.settings) > 1, k=last_k)
        if b := spectra.breadth_table(doc, s, checkpoint_figures, saved_breadth):
            breadth[s.id] = b
        if plots:
            figures[s.id], gone = _figures(doc, s, out, checkpoint_figures, curves)
            missing += gone
    if not plots:
        doc.para("Figures were not drawn (--no-plots).")
    directions = {t: i.direction for t, i in metric_tags().items() if i.direction}
    settings = [
        {**_setting_summary(s, figures.get(s.id, [])), "spectra_breadth": breadth.get(s.id)}
        for s in study.settings
    ]
    verdicts = judge_summary(_strict({"directions": directions, "settings": settings}), claims)
    if claims:
        _verdict_section(doc, verdicts)
    _runs_section(doc, study, run_cmds)
    machine = machine_info()
    doc.heading("Machine")
    doc.para(
        "Where this report was built (the run directories do not record the training machine)."
    )
    doc.table(["", ""], [[k, v] for k, v in machine.items()])

    summary = {
        "title": title,
        "sweep_dir": sweep.resolve().name,
        "last_k": last_k,
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "varying_keys": [a.key for a in study.axes],
        "row_keys": study.row_keys,
        "setting_keys": study.setting_keys,
        "directions": directions,
        "settings": settings,
        "runs": [_run_summary(r, study) for r in runs],
        "failed": [_run_summary(r, study) for r in runs if not r.contributes],
        "total_wall_time_s": sum(r.wall_time_s or 0.0 for r in runs),
        "command": sweep_cmd,
        "missing_figures": missing,
        "machine": machine,
        "verdicts": [verdict_dict(v) for v in verdicts],
    }
    # default=str: a config value YAML parsed into a type JSON lacks (a date) goes in as text
    text = json.dumps(portable(_strict(summary)), indent=2, allow_nan=False, default=str)
    per_run = {
        rel: fractions
        for b in breadth.values()
        if b["source"] == "checkpoints"
        for norm, runs in b["runs"].items()
        for rel, fractions in zip(b["run_dirs"][norm], runs)
    }
    if per_run:  # for a rebuild after the checkpoints are gone
        layers = next(iter(breadth.values()))["layers"]
        saved = json.dumps(_strict({"layers": layers, "runs": per_run}), indent=1)
        (out / BREADTH_FILE).write_text(saved + "\n")
    (out / "summary.json").write_text(text + "\n")
    (out / "report.md").write_text(to_markdown(doc))
    (out / "report.html").write_text(to_html(doc, images=out if embed_images else None))
    log.info("report written to %s", out)
    return out
