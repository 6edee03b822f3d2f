"""Assemble the report folder: tables, figures, commands, machine, summary.json."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import platform
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gansn
from gansn.report.aggregate import (
    DIRECTIONS,
    TABLE_METRICS,
    Setting,
    Study,
    build_study,
    format_stat,
    format_value,
    short_key,
)
from gansn.report.collect import Run, collect_runs, read_yaml
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
MAIN_METRICS = ("metrics/fid", "modes/kl", *(t for t, _ in TABLE_METRICS), "loss/d")
_LABELS = {**dict(TABLE_METRICS), "loss/d": "D loss"}


class NoRunsError(FileNotFoundError):
    """The sweep dir holds no run dir."""


def machine_info() -> dict[str, Any]:
    """Where the report was built: platform, CPU model, cores, Python, torch, gansn."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        torch_version: str | None = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version,
        "gansn": gansn.__version__,
    }


def sweep_commands(sweep_dir: Path, runs: list[Run]) -> tuple[str | None, list[tuple[str, str]]]:
    """The ``gansn-train -m`` command of the sweep and one ``gansn-train`` command per run.

    The sweep command comes from Hydra's ``multirun.yaml`` (``hydra.overrides.task``); without
    it, it is rebuilt from the runs' overrides, values of one key joined by commas in
    first-seen order (which is Hydra's sweep syntax, and keeps list values intact).
    """
    task = None
    mr = read_yaml(sweep_dir / "multirun.yaml")
    if isinstance(mr, dict):
        task = ((mr.get("hydra") or {}).get("overrides") or {}).get("task")
    if not isinstance(task, list):
        per_key: dict[str, list[str]] = {}
        for r in runs:
            for o in r.overrides:
                key, _, value = o.partition("=")
                vals = per_key.setdefault(key, [])
                if value not in vals:
                    vals.append(value)
        task = [f"{k}={','.join(v)}" for k, v in per_key.items()] or None
    sweep = None
    if task:
        sweep = "gansn-train -m " + " ".join(shlex.quote(str(t)) for t in task)
    per_run = [
        (r.rel, " ".join(["gansn-train", *(shlex.quote(o) for o in r.overrides)]))
        for r in runs
        if r.overrides
    ]
    return sweep, per_run


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _pick(setting: Setting, ok: Callable[[Run], bool]) -> tuple[Any, list[tuple[str, Run]]]:
    """One run per norm for the per-run figures: the same seed everywhere when possible
    (so every norm starts from the same fixed noise), else each norm's first usable run."""
    usable = {row.label: [r for r in row.used if ok(r)] for row in setting.rows}
    usable = {k: v for k, v in usable.items() if v}
    if not usable:
        return None, []
    common = set.intersection(
        *({json.dumps(r.seed, default=str) for r in v} for v in usable.values())
    )
    if common:
        seed_key = sorted(common)[0]
        picked = [
            (k, next(r for r in v if json.dumps(r.seed, default=str) == seed_key))
            for k, v in usable.items()
        ]
        return json.loads(seed_key), picked
    return None, [(k, v[0]) for k, v in usable.items()]


class _Figures:
    """Draws each figure, recording what could not be drawn and why."""

    def __init__(self, out: Path, enabled: bool, checkpoints: bool) -> None:
        self.out = out
        self.enabled = enabled
        self.checkpoints = checkpoints
        self.missing: list[dict[str, str]] = []
        self._models: dict[Path, Any] = {}

    def draw(
        self, setting: Setting, name: str, what: str, fn: Callable[[Path], Path | None]
    ) -> str | None:
        if not self.enabled:
            return None
        path = self.out / f"fig_{setting.id}_{name}.png"
        try:
            made = fn(path)
        except Exception as err:  # one broken figure must not cost the whole report
            log.warning("figure %s for %s failed: %s", name, setting.label, err)
            self.missing.append({"setting": setting.id, "figure": what, "reason": str(err)})
            return None
        if made is None:
            self.missing.append(
                {"setting": setting.id, "figure": what, "reason": "no data logged for it"}
            )
            return None
        return path.name

    def models(self, run: Run) -> tuple[Any, Any, Any]:
        if run.path not in self._models:
            from gansn.report.checkpoints import load_models

            try:
                self._models[run.path] = load_models(run.path)
            except Exception as err:
                self._models[run.path] = err
        got = self._models[run.path]
        if isinstance(got, Exception):
            raise RuntimeError(f"cannot load {run.rel}/checkpoints/last.pt: {got}") from got
        return got


def _setting_figures(
    setting: Setting, figs: _Figures, colors: dict[str, int]
) -> tuple[list[Figure], list[str]]:
    from gansn.report import plots

    out: list[Figure] = []
    notes: list[str] = []
    have = {t for r in setting.runs if r.contributes for t in r.series}

    main = next((t for t in MAIN_METRICS if t in have), None)
    curves = [main] if main else []
    if "modes/covered" in have and main != "modes/covered":
        curves.append("modes/covered")
    for tag in curves:
        label = _LABELS.get(tag, tag)
        name = figs.draw(
            setting,
            tag.replace("/", "_"),
            f"{label} vs step",
            lambda p, t=tag, lb=label: plots.plot_metric_curves(setting, t, p, ylabel=lb),
        )
        if name:
            out.append(
                Figure(
                    name,
                    f"{label} vs generator step per normalization "
                    "(mean over seeds; shaded: min–max over seeds).",
                )
            )

    if any(t.startswith("lipschitz/") for t in have):
        name = figs.draw(
            setting, "lipschitz", "Lipschitz bracket", lambda p: plots.plot_lipschitz(setting, p)
        )
        if name:
            out.append(
                Figure(
                    name,
                    "Lipschitz constant of D: product of layer operator norms "
                    "(upper bound, solid) and the largest empirical lower "
                    "bound — max input-gradient norm or finite-difference "
                    "ratio (dashed); mean over seeds, log scale.",
                )
            )

    if figs.enabled and figs.checkpoints:
        from gansn.report.checkpoints import (
            generate_points,
            is_point_model,
            mode_centers,
            singular_value_spectra,
        )

        seed, picked = _pick(setting, lambda r: r.checkpoint is not None)
        seed_txt = f"seed {seed}" if seed is not None else "first run of each norm"
        if not picked:
            notes.append("Singular value spectra: no checkpoints/last.pt in any run.")
        else:

            def spectra(p: Path) -> Path | None:
                data = {}
                for label, run in picked:
                    _, D, _ = figs.models(run)
                    data[label] = list(singular_value_spectra(D).items())
                return plots.plot_spectra(data, p, colors)

            name = figs.draw(setting, "spectra", "singular value spectra", spectra)
            if name:
                out.append(
                    Figure(
                        name,
                        "Singular values σ_i/σ_max of each layer's effective "
                        f"weight of D at the end of training ({seed_txt}); "
                        "layers matched by position (cf. SNGAN, figure 2).",
                    )
                )

            def points(p: Path) -> Path | None:
                data, centers = {}, None
                for label, run in picked:
                    G, _, spec = figs.models(run)
                    if not is_point_model(spec):
                        continue
                    data[label] = generate_points(G)
                    if centers is None:
                        centers = mode_centers(run.config.get("dataset"))
                return plots.plot_points(data, centers, p, colors) if data else None

            toy = any(str((r.config.get("model") or {}).get("name")) == "mlp" for _, r in picked)
            if toy:
                name = figs.draw(setting, "points", "generated points", points)
                if name:
                    out.append(
                        Figure(
                            name,
                            "2000 generated points from seeded noise over the "
                            f"true mode centers ({seed_txt}).",
                        )
                    )

    if figs.enabled:
        seed, picked = _pick(setting, lambda r: r.final_samples is not None)
        if picked:
            title = (
                f"Final samples, fixed noise of seed {seed}"
                if seed is not None
                else "Final samples (seeds differ between norms)"
            )
            name = figs.draw(
                setting,
                "samples",
                "sample montage",
                lambda p: plots.plot_montage(
                    [(lb, r.final_samples) for lb, r in picked], p, title=title
                ),
            )
            if name:
                out.append(Figure(name, f"{title}: samples/final.png of each normalization."))
        else:
            notes.append("Sample montage: no samples/final.png in any run.")
    return out, notes


def _results_table(setting: Setting) -> Table:
    headers = ["Norm", "n", "Seeds", *(c.label for c in setting.columns)]
    rows: list[list[Cell | str]] = []
    for row in setting.rows:
        n = str(len(row.used))
        if row.excluded:
            n += f" (+{len(row.excluded)} excl.)"
        cells: list[Cell | str] = [row.label, n, ", ".join(format_value(s) for s in row.seeds)]
        for c in setting.columns:
            cells.append(Cell(format_stat(row.stats[c.id]), bold=row.label in setting.best[c.id]))
        rows.append(cells)
    return Table(headers, rows)


# protocol entries that differ between runs without making their numbers incomparable
_PROTOCOL_NOISE = ("seconds", "seed", "cache", "cache_file")


def _protocol_text(setting: Setting) -> str | None:
    protos = {
        json.dumps(
            {k: v for k, v in r.protocol.items() if k not in _PROTOCOL_NOISE}, sort_keys=True
        )
        for r in setting.runs
        if r.contributes and r.protocol
    }
    if not protos:
        return None
    txt = "; ".join(
        ", ".join(f"{k}={format_value(v)}" for k, v in json.loads(p).items())
        for p in sorted(protos)
    )
    if len(protos) > 1:
        return f"Metric protocols DIFFER between runs — numbers are not comparable: {txt}"
    return f"Metric protocol: {txt}"


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set):
        return [_jsonable(v) for v in x]
    if isinstance(x, str | int | bool) or x is None:
        return x
    return str(x)


def _summary(
    study: Study,
    sweep: Path,
    title: str,
    figs_by_setting: dict[str, list[str]],
    missing: list[dict[str, str]],
    machine: dict[str, Any],
    sweep_cmd: str | None,
) -> dict[str, Any]:
    settings = []
    for s in study.settings:
        settings.append(
            {
                "id": s.id,
                "label": s.label,
                "values": s.values,
                "columns": [
                    {
                        "id": c.id,
                        "label": c.label,
                        "tag": c.tag,
                        "kind": c.kind,
                        "direction": c.direction,
                    }
                    for c in s.columns
                ],
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
                            c.id: (row.stats[c.id].to_dict() if row.stats[c.id] else None)
                            for c in s.columns
                        },
                    }
                    for row in s.rows
                ],
                "figures": figs_by_setting.get(s.id, []),
            }
        )
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
            "varying": {k: r.flat.get(k) for k in study.varying},
        }
        for r in study.runs
    ]
    return _jsonable(
        {
            "title": title,
            "sweep_dir": str(sweep),
            "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "varying_keys": study.varying,
            "row_keys": study.row_keys,
            "setting_keys": study.setting_keys,
            "directions": DIRECTIONS,
            "settings": settings,
            "runs": runs,
            "failed": [x for x in runs if not x["contributes"]],
            "total_wall_time_s": sum(r.wall_time_s or 0.0 for r in study.runs),
            "command": sweep_cmd,
            "missing_figures": missing,
            "machine": machine,
        }
    )


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
        from gansn.report.plots import require_matplotlib

        require_matplotlib()  # fail before any work, with the install command
    runs = collect_runs(sweep, exclude=(out,))
    if not runs:
        raise NoRunsError(
            f"no run dirs under {sweep} (a run dir holds .hydra/config.yaml, config.yaml, "
            "metrics.jsonl or checkpoints/)"
        )
    out.mkdir(parents=True, exist_ok=True)
    study = build_study(runs)
    title = title or f"Normalization study: {sweep.resolve().name}"
    machine = machine_info()
    sweep_cmd, run_cmds = sweep_commands(sweep, runs)
    figs = _Figures(out, plots, checkpoint_figures)
    colors: dict[str, int] = {}
    for s in study.settings:
        for row in s.rows:
            colors.setdefault(row.label, len(colors))

    doc = Document(title)
    n_ok = sum(r.contributes for r in runs)
    doc.add(
        Para(
            f"Sweep {sweep.resolve()} — {len(runs)} runs, {n_ok} used in the tables, "
            f"{len(runs) - n_ok} excluded (failed or without metrics), "
            f"{len(study.settings)} setting(s). Report by gansn {gansn.__version__}, "
            f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}."
        )
    )
    shown = set(study.display_keys)
    row_keys = [short_key(k) for k in study.row_keys if k in shown or k.endswith(".name")]
    setting_keys = [short_key(k) for k in study.setting_keys if k in shown]
    dims = [
        f"Rows (normalization): {', '.join(row_keys) or '—'}",
        f"Tables (settings): {', '.join(setting_keys) or '—'}",
        "Aggregated over: seed",
    ]
    doc.add(Bullets(dims))
    if sweep_cmd:
        doc.add(Heading("Command"), Code(sweep_cmd))

    figs_by_setting: dict[str, list[str]] = {}
    for s in study.settings:
        doc.add(
            Heading(
                f"Setting {s.index}: {s.label}"
                if len(study.settings) > 1
                else f"Results: {s.label}"
            )
        )
        if s.values and s.full_label != s.label:
            doc.add(Para(f"Configuration: {s.full_label}"))
        if not s.columns:
            doc.add(
                Para(
                    "No evaluation metrics (FID, KID, P/R, modes) or Lipschitz bounds "
                    "were logged by any usable run of this setting."
                )
            )
        doc.add(_results_table(s))
        doc.add(
            Para(
                "Mean ± std over seeds (sample std, ddof=1; no ± for one seed); n = seeds "
                "used, excl. = failed or metric-less runs left out. final = last logged "
                "value, best = best logged value over training. Bold = best per column "
                "(lower is better for FID, KID and KL; higher for the rest; ties all bold); "
                "Lipschitz bounds are not ranked."
            )
        )
        proto = _protocol_text(s)
        if proto:
            doc.add(Para(proto))
        incomplete = [r.rel for r in s.runs if r.contributes and r.status != "completed"]
        if incomplete:
            doc.add(
                Para("Not completed (their last logged values are used): " + ", ".join(incomplete))
            )
        fig_blocks, notes = _setting_figures(s, figs, colors)
        doc.add(*fig_blocks)
        figs_by_setting[s.id] = [f.path for f in fig_blocks]
        gone = [m for m in figs.missing if m["setting"] == s.id]
        if gone or notes:
            doc.add(
                Para(
                    "Figures not drawn: "
                    + "; ".join([f"{m['figure']} ({m['reason']})" for m in gone] + notes)
                )
            )
    if not plots:
        doc.add(Para("Figures were not drawn (--no-plots)."))

    doc.add(Heading("Failed runs"))
    failed = study.excluded
    if failed:
        doc.add(
            Table(
                ["Run dir", "Status", "Step", "Error"],
                [
                    [
                        r.rel,
                        r.status,
                        format_value(r.step),
                        r.error or ("no metrics logged" if not r.has_metrics else "—"),
                    ]
                    for r in failed
                ],
            )
        )
    else:
        doc.add(Para("None: every run completed with metrics."))

    doc.add(Heading("Runs"))
    vk = study.display_keys
    doc.add(
        Table(
            ["Run dir", *map(short_key, vk), "Status", "Step", "Wall time"],
            [
                [
                    r.rel,
                    *(format_value(r.flat.get(k)) for k in vk),
                    r.status,
                    format_value(r.step),
                    _fmt_seconds(r.wall_time_s),
                ]
                for r in runs
            ],
            caption="Config keys that vary across the sweep, per run.",
        )
    )
    total = sum(r.wall_time_s or 0.0 for r in runs)
    doc.add(Para(f"Total wall time: {_fmt_seconds(total)} over {len(runs)} runs."))
    if run_cmds:
        doc.add(
            Heading("Per-run commands", 3),
            Code("\n".join(f"{cmd}  # {rel}" for rel, cmd in run_cmds)),
        )
    warnings = [f"{r.rel}: {w}" for r in runs for w in r.warnings]
    if warnings:
        doc.add(Heading("Warnings", 3), Bullets(warnings))

    doc.add(
        Heading("Machine"),
        Para(
            "Where this report was built (the run directories do not record the training machine)."
        ),
        Table(["", ""], [[k, format_value(v)] for k, v in machine.items()]),
    )

    summary = _summary(study, sweep, title, figs_by_setting, figs.missing, machine, sweep_cmd)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(to_markdown(doc))
    (out / "report.html").write_text(to_html(doc, root=out, embed_images=embed_images))
    log.info("report written to %s", out)
    return out
