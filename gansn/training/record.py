"""The bookkeeping around one training session, kept out of the loop itself.

:class:`RunRecord` is a context manager around the loop: ``status.json`` (running, then
completed / interrupted / failed with the error, written through the
:class:`~gansn.training.rundir.RunDir`), SIGINT/SIGTERM handling, and the progress bar.
The run dir's lock and ``train.log`` belong to the RunDir.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from types import TracebackType
from typing import Any, Protocol

from tqdm.auto import tqdm

from gansn.errors import ConfigError
from gansn.training.rundir import RunDir

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
    """What the record reads from the trainer; a signal reaches it by ``request_stop``."""

    step: int
    steps: int
    elapsed: float

    @property
    def saved_step(self) -> int | None:
        """The step ``checkpoints/last.pt`` holds, as far as the run knows."""
        ...

    def checkpoint_note(self) -> str:
        """Which checkpoint a stopped run leaves, in words (for its last message)."""
        ...

    def request_stop(self, signal_name: str) -> bool:
        """Ask the loop to stop after this step; False once a stop was requested already."""
        ...


class RunRecord:
    """``with RunRecord(trainer, run_dir) as record:`` around a run's loop, ``run_dir`` an
    open :class:`~gansn.training.rundir.RunDir`.

    On entry: ``status.json`` set to running, signal handlers installed (the first
    SIGINT/SIGTERM asks the trainer to stop, so the loop finishes its step and saves; a
    second SIGINT aborts), a progress bar.
    On exit: ``status.json`` says ``record.status`` (completed, or interrupted once the
    loop stopped on a signal) or failed with the error, which propagates; an ``OSError``
    (full disk, ...) while writing becomes one :class:`RunIOError`; the handlers are
    removed again.
    """

    def __init__(self, trainer: Recorded, run_dir: RunDir) -> None:
        self.trainer, self.run_dir = trainer, run_dir
        self.status = "completed"
        self._old_handlers: dict[int, Any] = {}
        self.pbar: Any = None
        self._status_at = 0.0
        self._status_checkpoint: int | None = None

    def __enter__(self) -> RunRecord:
        t = self.trainer
        try:
            self._write("running", None)
            self._install_signal_handlers()
        except BaseException as err:
            try:
                self._finish(err)
            finally:
                self._restore_signal_handlers()
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
        if self.run_dir.log_error is not None:
            raise self.run_dir.log_error  # train.log could not be written: stop here
        self.pbar.update(1)
        if postfix:
            self.pbar.set_postfix(postfix)
        saved = self.trainer.saved_step
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
            self._restore_signal_handlers()

    def _finish(self, exc: BaseException | None) -> None:
        """Write the final status; a write failure becomes :class:`RunIOError`."""
        if exc is None:
            exc = self.run_dir.log_error
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
        self.run_dir.log_failure(message, log)
        # the disk that failed the run may refuse this too; the exception still says it all
        with contextlib.suppress(OSError):
            self._write("failed", message)

    def _write(self, status: str, error: str | None) -> None:
        t = self.trainer
        self._status_at = time.monotonic()
        self._status_checkpoint = t.saved_step  # the last saved step
        self.run_dir.write_status(
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
            if not trainer.request_stop(name) and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("%s received: stopping after this step (Ctrl-C again to abort)", name)

        self._old_handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


class RankRecord(RunRecord):
    """What a rank other than 0 keeps of the record under torchrun: the signal handlers,
    so that a stop request reaches the loop on this rank too.  Rank 0's
    :class:`RunRecord` writes the status and shows the progress bar."""

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
