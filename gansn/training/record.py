"""The bookkeeping around one training run, kept out of the loop itself.

:class:`RunRecord` is a context manager that owns what a run records about itself:
the run dir's lock, ``status.json`` (running, then completed / interrupted / failed with
the error), the run's file log ``train.log``, SIGINT/SIGTERM handling, and the progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from tqdm.auto import tqdm

from gansn.errors import ConfigError
from gansn.training.lock import RunLock
from gansn.training.logging import write_status
from gansn.utils import remove_temp_files

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """A loss became NaN/Inf; training stops and the last good checkpoint is kept."""


class RunIOError(OSError):
    """Writing the run's files failed (disk full, quota, read-only, ...); the run stopped.

    The message is one line: what could not be written, why, and which checkpoint is kept.
    ``__cause__`` is the original ``OSError``.
    """


# while a run is running, status.json is rewritten at each checkpoint and at least this often,
# so a run killed without a word (kill -9, the OOM killer, a power cut) leaves its last step
# and checkpoint there, not "running, step 0"
STATUS_EVERY_S = 60.0


class Recorded(Protocol):
    """What the record reads from (and, for a signal, writes into) the trainer."""

    run_dir: Path
    step: int
    steps: int
    elapsed: float
    stopped_by: str | None

    def checkpoint_note(self) -> str:
        """Which checkpoint a stopped run leaves, in words (for its last message)."""
        ...


class RunRecord:
    """``with RunRecord(trainer) as record:`` around a run's loop.

    On entry: the run dir and its lock (:class:`~gansn.training.lock.RunLock`; another live
    writer is refused), temp files of a killed save swept, ``train.log`` attached to the
    root logger, ``status.json`` set to running, signal handlers installed (first
    SIGINT/SIGTERM sets ``trainer.stopped_by`` so the loop finishes its step and saves; a
    second SIGINT aborts), a progress bar.
    On exit: ``status.json`` says ``record.status`` (completed, or interrupted once the
    loop stopped on a signal) or failed with the error, which propagates; an ``OSError``
    (full disk, ...) while writing becomes one :class:`RunIOError`; everything installed is
    removed again and the lock released.
    """

    def __init__(self, trainer: Recorded) -> None:
        self.trainer = trainer
        self.status = "completed"
        self._old_handlers: dict[int, Any] = {}
        self._file_log: _RunLogHandler | None = None
        self._lock = RunLock(trainer.run_dir)
        self.pbar: Any = None
        self._status_at = 0.0
        self._status_checkpoint: int | None = None

    def __enter__(self) -> RunRecord:
        t = self.trainer
        self._lock.acquire()
        try:
            removed = remove_temp_files(t.run_dir)
            self._file_log = _attach_file_log(t.run_dir / "train.log")
            if removed:
                log.warning(
                    "removed %d temp file(s) of an interrupted save: %s",
                    len(removed),
                    ", ".join(str(p.relative_to(t.run_dir)) for p in removed),
                )
            self._write("running", None)
            self._install_signal_handlers()
        except BaseException as err:
            try:
                self._finish(err)
            finally:
                self._teardown()
            raise
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
        if self._file_log is not None and self._file_log.error is not None:
            raise self._file_log.error  # train.log could not be written: stop here
        self.pbar.update(1)
        if postfix:
            self.pbar.set_postfix(postfix)
        saved = getattr(self.trainer, "_saved_step", None)
        if saved != self._status_checkpoint or time.monotonic() - self._status_at >= STATUS_EVERY_S:
            self._write("running", None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, ConfigError):
            # bad input found mid-run is one line on the terminal: the bar it stopped is
            # erased rather than left above it
            self.pbar.leave = False
        self.pbar.close()
        try:
            self._finish(exc)
        finally:
            self._teardown()

    def _finish(self, exc: BaseException | None) -> None:
        """Write the final status; a write failure becomes :class:`RunIOError`."""
        if exc is None and self._file_log is not None:
            exc = self._file_log.error
        if exc is None:
            try:
                self._write(self.status, None)
                return
            except OSError as err:
                exc = err
        if isinstance(exc, OSError) and not isinstance(exc, RunIOError):
            failure = RunIOError(self._io_message(exc))
            self._record_failure(str(failure))
            raise failure from exc
        if isinstance(exc, NonFiniteLossError | RunIOError | ConfigError):
            self._record_failure(str(exc))
        else:
            self._record_failure(repr(exc))

    def _io_message(self, err: OSError) -> str:
        t = self.trainer
        what = f"cannot write {err.filename}" if err.filename else "a write failed"
        why = err.strerror or str(err) or type(err).__name__
        return (
            f"{what}: {why}; training stopped at G step {t.step}. {t.checkpoint_note()}; "
            "free space (or fix the file system) and re-run the same command to resume"
        )

    def _record_failure(self, message: str) -> None:
        """status.json failed and the reason in train.log, as far as the disk still allows."""
        if self._file_log is not None and self._file_log.error is None:
            self._file_log.handle(
                log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
            )
        # the disk that failed the run may refuse this too; the exception still says it all
        with contextlib.suppress(OSError):
            self._write("failed", message)

    def _teardown(self) -> None:
        self._restore_signal_handlers()
        if self._file_log is not None:
            logging.getLogger().removeHandler(self._file_log)
            self._file_log.close()
        self._lock.release()

    def _write(self, status: str, error: str | None) -> None:
        t = self.trainer
        self._status_at = time.monotonic()
        self._status_checkpoint = getattr(t, "_saved_step", None)  # the last saved step
        write_status(
            t.run_dir,
            status=status,
            step=t.step,
            error=error,
            wall_time_s=t.elapsed,
            checkpoint_step=self._status_checkpoint,
            updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )

    def _restore_signal_handlers(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        self._old_handlers = {}

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


class _RunLogHandler(logging.FileHandler):
    """``train.log``: a failed write is kept for the record to stop the run on.

    logging's default prints a traceback to stderr for every failed record and carries on,
    so a full disk would scroll tracebacks while the run goes on unrecorded.
    """

    error: OSError | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        err = sys.exc_info()[1]
        if self.error is None and isinstance(err, OSError):
            self.error = err
        elif not isinstance(err, OSError):
            super().handleError(record)


def _attach_file_log(path: Path) -> _RunLogHandler:
    handler = _RunLogHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    return handler


class RankRecord(RunRecord):
    """What a rank other than 0 keeps of the record under torchrun: the signal handlers,
    so that a stop request reaches the loop on this rank too.  Rank 0's
    :class:`RunRecord` owns the run dir (lock, status, log, progress bar)."""

    def __enter__(self) -> RankRecord:
        self._install_signal_handlers()
        return self

    def advance(self, postfix: dict[str, str] | None = None) -> None:
        pass

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore_signal_handlers()
