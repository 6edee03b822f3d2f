"""Hydra callbacks: turn a finished multirun sweep into a report (the one-command study)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("gansn.report")


class ReportOnMultirunEnd(Callback):
    """After the last job of ``gansn-train -m ... report=true``, run ``gansn-report <sweep
    dir>`` into ``<sweep dir>/report/``.

    Registered for every run by conf/train.yaml and switched by the ``report`` key (the study
    presets set it); a failure to build the report is logged, never raised, so it cannot
    mask the sweep's own result.
    """

    def __init__(self, out: str | None = None, plots: bool = True) -> None:
        self.out, self.plots = out, plots

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.report:  # every composed config holds it (gansn.schema.TRAIN)
            return
        # imported here: the report (matplotlib) loads only when a sweep ends
        from gansn.report import build_report

        sweep = Path(config.hydra.sweep.dir)
        try:
            out = build_report(sweep, self.out, plots=self.plots)
        except Exception as err:
            log.error(
                "could not build the report for %s: %s; retry with gansn-report %s",
                sweep,
                err,
                sweep,
            )
            return
        log.info("report written to %s", out / "report.md")
