"""Aggregate a normalization-study sweep into a self-contained report folder.

>>> from gansn.report import build_report
>>> build_report("multirun/2024-01-01/12-00-00")  # doctest: +SKIP
PosixPath('multirun/2024-01-01/12-00-00/report')

Reads only the run-directory contract (``config.yaml``, ``.hydra/``, ``status.json``,
``metrics.jsonl``, ``checkpoints/last.pt``, ``samples/final.png``).  matplotlib (the
``report`` extra) is imported only when figures are drawn.
"""

from gansn.report.aggregate import Stat, Study, aggregate, best_keys, build_study, direction
from gansn.report.build import NoRunsError, build_report, machine_info, sweep_commands
from gansn.report.collect import Run, collect_runs, find_run_dirs, load_run, read_metrics
from gansn.report.plots import ReportDependencyError

__all__ = [
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
    "direction",
    "find_run_dirs",
    "load_run",
    "machine_info",
    "read_metrics",
    "sweep_commands",
]
