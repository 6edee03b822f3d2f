"""Aggregate a normalization-study sweep into a self-contained report folder.

>>> from gansn.report import build_report
>>> build_report("multirun/2024-01-01/12-00-00")  # doctest: +SKIP
PosixPath('multirun/2024-01-01/12-00-00/report')
"""

from gansn.report.aggregate import aggregate, best_keys, build_study
from gansn.report.build import build_report
from gansn.report.collect import collect_runs, read_metrics, sweep_axes
from gansn.report.plots import ReportDependencyError

__all__ = [
    "ReportDependencyError",
    "aggregate",
    "best_keys",
    "build_report",
    "build_study",
    "collect_runs",
    "read_metrics",
    "sweep_axes",
]
