"""The bookkeeping around one training run, kept out of the loop itself.

:class:`RunRecord` is a context manager that owns what a run records about itself:
``status.json`` (running, then completed / interrupted / failed with the error), the run's
file log ``train.log``, SIGINT/SIGTERM handling, and the progress bar.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from tqdm.auto import tqdm

from gansn.training.logging import write_status

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/Inf; training stops and the last good checkpoint is kept."""


class Recorded(Protocol):
    """What the record reads from (and, for a signal, writes into) the trainer."""

    run_dir: Path
    step: int
    steps: int
    elapsed: float
    stopped_by: str | None


class RunRecord:
    """``with RunRecord(trainer) as record:`` around a run's loop.

    On entry: the run dir, ``train.log`` attached to the root logger, ``status.json`` set to
    running, signal handlers installed (first SIGINT/SIGTERM sets ``trainer.stopped_by`` so
    the loop finishes its step and saves; a second SIGINT aborts), a progress bar.
    On exit: ``status.json`` says ``record.status`` (completed, or interrupted once the
    loop stopped on a signal) or failed with the error, which propagates; everything
    installed is removed again.
    """

    def __init__(self, trainer: Recorded) -> None:
        self.trainer = trainer
        self.status = "completed"
        self._old_handlers: dict[int, Any] = {}
        self._file_log: logging.Handler | None = None
        self.pbar: Any = None

    def __enter__(self) -> RunRecord:
        t = self.trainer
        t.run_dir.mkdir(parents=True, exist_ok=True)
        self._file_log = _attach_file_log(t.run_dir / "train.log")
        self._write("running", None)
        self._install_signal_handlers()
        self.pbar = tqdm(
            total=t.steps,
            initial=t.step,
            desc="train",
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            leave=True,
        )
        return self

    def advance(self, postfix: dict[str, str] | None = None) -> None:
        """One G step done; ``postfix`` refreshes the bar's loss/speed readout."""
        self.pbar.update(1)
        if postfix:
            self.pbar.set_postfix(postfix)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.pbar.close()
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        try:
            if exc is None:
                self._write(self.status, None)
            elif isinstance(exc, NonFiniteLossError):
                log.error("%s", exc)
                self._write("failed", str(exc))
            else:
                self._write("failed", repr(exc))
        finally:
            logging.getLogger().removeHandler(self._file_log)
            self._file_log.close()

    def _write(self, status: str, error: str | None) -> None:
        t = self.trainer
        write_status(t.run_dir, status=status, step=t.step, error=error, wall_time_s=t.elapsed)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        trainer = self.trainer

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if trainer.stopped_by is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            trainer.stopped_by = name
            log.warning("%s received: stopping after this step (Ctrl-C again to abort)", name)

        self._old_handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _attach_file_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    return handler
