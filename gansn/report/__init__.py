"""Aggregate a normalization-study sweep into a self-contained report folder.

>>> from gansn.report import build_report
>>> build_report("multirun/2024-01-01/12-00-00")  # doctest: +SKIP
PosixPath('multirun/2024-01-01/12-00-00/report')

Reads the sweep as Hydra recorded it (``multirun.yaml``, each run's ``.hydra/overrides.yaml``)
and the run-directory contract (``config.yaml``, ``status.json``, ``metrics.jsonl``,
``checkpoints/last.pt``, ``samples/final.png``); matplotlib (the ``report`` extra) draws the
figures.
"""

from gansn.report.aggregate import Stat, Study, aggregate, best_keys, build_study
from gansn.report.build import NoRunsError, build_report
from gansn.report.collect import Axis, Run, collect_runs, read_metrics, sweep_axes
from gansn.report.plots import ReportDependencyError

__all__ = [
    "Axis",
    "NoRunsError",
    "ReportDependencyError",
    "Run",
    "Stat",
    "Study",
    "aggregate",
    "best_keys",
    "build_report",
    "build_study",
    "collect_runs",
    "read_metrics",
    "sweep_axes",
]
