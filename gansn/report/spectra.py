"""D's singular-value spectra in the report: the spectra figure (SNGAN figure 2) and the
table of each layer's spectrum breadth, from the runs' checkpoints or, for a report rebuilt
from committed logs, from the ``spectra_breadth.json`` an earlier report saved.
"""

from __future__ import annotations

import functools
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from gansn.checkpoint import load_models
from gansn.lipschitz import plot_singular_value_spectra, singular_value_spectra
from gansn.report.aggregate import Setting, aggregate, format_stat
from gansn.report.plots import NoInformation, _save, _seed_text, pick_runs
from gansn.report.render import Document


def spectra_panels(
    spectra: dict[str, list[tuple[str, np.ndarray]]],
) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """``{norm: [(layer name, singular values), ...]}`` -> the panels to draw,
    ``{norm: {panel title: values}}`` with layers matched by position, and the titles of
    the layers left out because they carry no information.

    A layer with one singular value (D's last linear, one output) has σ_1/σ_1 = 1 under
    every norm: its panel would be a single point at 1.
    """
    # Layers are matched by position, not name: a feature norm after a layer shifts the
    # indices inside nn.Sequential, so the same layer has different names under different norms.
    panels: dict[str, dict[str, np.ndarray]] = {lb: {} for lb in spectra}
    dropped = []
    for i, title, keep in _layer_positions(spectra):
        if not keep:
            dropped.append(title)
            continue
        for lb, layers in spectra.items():
            if i < len(layers):
                panels[lb][title] = np.asarray(layers[i][1])
    return panels, dropped


def _layer_positions(
    spectra: dict[str, list[tuple[str, np.ndarray]]],
) -> list[tuple[int, str, bool]]:
    """``(position, panel title, kept)`` per layer position: kept unless every norm's layer
    there has a single singular value."""
    out = []
    for i in range(max(map(len, spectra.values()), default=0)):
        names = {layers[i][0] for layers in spectra.values() if i < len(layers)}
        title = f"layer {i + 1}" + (f": {names.pop()[-24:]}" if len(names) == 1 else "")
        sizes = [np.asarray(layers[i][1]).size for layers in spectra.values() if i < len(layers)]
        out.append((i, title, any(n > 1 for n in sizes)))
    return out


def d_spectra(checkpoint: Path) -> list[tuple[str, np.ndarray]]:
    """D's per-layer singular values in a checkpoint, computed once per file version: the
    spectra figure and the breadth table read the same checkpoints."""
    st = Path(checkpoint).stat()
    return _d_spectra(str(Path(checkpoint).resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _d_spectra(path: str, _mtime_ns: int, _size: int) -> list[tuple[str, np.ndarray]]:
    return list(singular_value_spectra(load_models(Path(path))[1]).items())


def spectra_figure(setting: Setting, path: Path) -> str:
    """SNGAN figure 2: per layer of D, sorted sigma_i / sigma_max, one line per norm."""
    seed, picked = pick_runs(setting, lambda r: r.checkpoint is not None)
    spectra = {lb: d_spectra(r.checkpoint) for lb, r in picked}
    panels, dropped = spectra_panels(spectra)
    if not any(panels.values()):
        raise NoInformation("every layer of D has a single singular value")
    title = "Singular values of D's layers at the end of training"
    fig = plot_singular_value_spectra(panels, None, title=title)
    # The plotting helper puts its legend in the first panel, over the data: move it outside.
    first = fig.axes[0]
    if first.get_legend() is not None:
        first.get_legend().remove()
    handles, _ = first.get_legend_handles_labels()
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    _save(fig, path)
    left_out = (
        f" Not drawn: {', '.join(dropped)} (one singular value, so σ_1/σ_1 = 1 under every norm)."
        if dropped
        else ""
    )
    return (
        "Singular values σ_i/σ_max of each layer's effective weight of D at the end of "
        f"training ({_seed_text(seed)}); layers matched by position (cf. SNGAN, figure 2)."
        + left_out
    )


def stable_rank_fraction(values: np.ndarray) -> float:
    """How broad a spectrum is: the stable rank sum(sigma_i^2) / sigma_1^2 over the number of
    singular values k -- 1 when all equal the largest, 1/k for a rank-one matrix."""
    v = np.asarray(values, np.float64)
    return float(((v / v[0]) ** 2).sum() / v.size) if v.size and v[0] > 0 else math.nan


def spectra_breadth(setting: Setting) -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """SNGAN figure 2 in numbers: ``(layer titles, {norm: {run dir: [fraction per layer]}})``,
    the stable-rank fraction of each D layer of every run with a checkpoint; layers matched by
    position (as in :func:`spectra_figure`), those with a single singular value left out."""
    spectra = {
        row.label: {r.rel: d_spectra(r.checkpoint) for r in row.used if r.checkpoint}
        for row in setting.rows
    }
    spectra = {k: v for k, v in spectra.items() if v}
    # the layers and their titles: from the first run of each norm, as in the figure
    firsts = {norm: next(iter(runs.values())) for norm, runs in spectra.items()}
    kept = [(i, t) for i, t, keep in _layer_positions(firsts) if keep]
    table = {
        norm: {
            rel: [stable_rank_fraction(ls[i][1]) if i < len(ls) else math.nan for i, _ in kept]
            for rel, ls in runs.items()
        }
        for norm, runs in spectra.items()
    }
    return [t for _, t in kept], table


# Per run, the breadth of D's final spectra, saved beside a report: checkpoints are too big
# to commit, so a report rebuilt from committed logs reads the numbers from here.
BREADTH_FILE = "spectra_breadth.json"


def breadth_table(
    doc: Document, setting: Setting, checkpoints: bool, saved: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Per norm and D layer, the stable-rank fraction of the final spectrum over seeds,
    from the checkpoints, else from a saved ``spectra_breadth.json``; returns ``{"layers":
    titles, "runs": {norm: [[fraction per layer] per run]}, "run_dirs": {norm: [rel]},
    "source": "checkpoints" | BREADTH_FILE}``."""
    titles, table = spectra_breadth(setting) if checkpoints else ([], {})
    source = "checkpoints"
    if not titles and saved:
        source, titles = BREADTH_FILE, list(saved["layers"])
        table = {
            row.label: {r.rel: saved["runs"][r.rel] for r in row.used if r.rel in saved["runs"]}
            for row in setting.rows
        }
        table = {k: v for k, v in table.items() if v}
    if not titles or not table:
        return None
    rows = []
    for norm, per_run in table.items():
        runs = list(per_run.values())
        per_layer = [aggregate(run[j] for run in runs) for j in range(len(titles))]
        mean_layers = aggregate(statistics.fmean(run) for run in runs)
        rows.append([norm, str(len(runs)), *map(format_stat, per_layer), format_stat(mean_layers)])
    doc.table(
        ["Norm", "n", *titles, "mean over layers"],
        rows,
        caption=(
            "Breadth of each D layer's singular value spectrum at the end of training: stable "
            "rank Σσ_i²/σ_1² divided by the number of singular values (1: all equal the "
            "largest; 1/k: rank one); mean over the seeds with a checkpoint [95 % CI]. SNGAN "
            "(figure 2) reports spectral norm keeping spectra broad where weight "
            "normalization concentrates them."
        ),
    )
    if source != "checkpoints":
        doc.para(
            f"(Breadth read from {BREADTH_FILE}, saved from the checkpoints by an earlier report.)"
        )
    return {
        "layers": titles,
        "runs": {norm: list(per_run.values()) for norm, per_run in table.items()},
        "run_dirs": {row.label: list(table.get(row.label, {})) for row in setting.rows},
        "source": source,
    }
