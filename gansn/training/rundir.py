"""The run directory: the one object that writes into it.

A :class:`RunDir` owns everything a run leaves on disk::

    <run dir>/.lock                 who writes here (lock.py's flock)
              status.json           running / completed / interrupted / failed
              train.log             the run's file log
              metrics.jsonl         one JSON object per logged step
              events.out.tfevents.* the TensorBoard writer
              samples/*.png         sample grids of the fixed noise
              checkpoints/*.pt      checkpoints (checkpoint.py's format, written atomically)
              config.yaml, .hydra/  the config the CLI composed

No other module opens a file for writing under a run dir: they call a RunDir (a test
watches every write of a training run and checks that it went through here).  ``gansn-train``
opens it once, before its first write, and hands it to the trainer; a trainer given a path
opens its own around ``train()``.  Rank != 0 under torchrun gets a view that writes nothing
(``writes=False``): rank 0 alone writes the run dir.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from gansn import checkpoint as ckpt_io
from gansn.errors import ConfigError
from gansn.sampling import save_image
from gansn.training.lock import RunLock
from gansn.training.tensorboard import Plan, RunWriter, Silent
from gansn.utils import atomic_write, remove_temp_files

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
STATUS = "status.json"
TRAIN_LOG = "train.log"


class RunDir:
    """``with RunDir(path) as run_dir:`` -- the lock held, ``train.log`` attached.

    Created lazily: nothing exists on disk before :meth:`open`, so a refused run leaves no
    trace.  Reading (``last``, ``logged_tags``) works unopened.  ``writes=False``: a view
    for ranks other than 0 under torchrun, whose writes do nothing (rank 0 writes).
    """

    def __init__(self, path: str | Path, *, writes: bool = True) -> None:
        self.path = Path(path)
        self.writes = writes
        self._lock = RunLock(self.path)
        self._file_log: _RunLogHandler | None = None
        self.is_open = False

    # ------------------------------------------------------------- open / close
    def open(self) -> RunDir:
        """Take the lock (another live writer is refused), sweep the temp files of a killed
        save and attach ``train.log`` to the root logger."""
        if self.is_open or not self.writes:
            self.is_open = True
            return self
        self._lock.acquire()
        try:
            removed = remove_temp_files(self.path)
            self._file_log = _attach_file_log(self.path / TRAIN_LOG)
        except BaseException:
            self._lock.release()
            raise
        self.is_open = True
        if removed:
            log.warning(
                "removed %d temp file(s) of an interrupted save: %s",
                len(removed),
                ", ".join(str(p.relative_to(self.path)) for p in removed),
            )
        return self

    def close(self) -> None:
        """Detach ``train.log`` and release the lock (the lock file is removed)."""
        if self._file_log is not None:
            logging.getLogger().removeHandler(self._file_log)
            self._file_log.close()
            self._file_log = None
        if self.is_open and self.writes:
            self._lock.release()
        self.is_open = False

    def __enter__(self) -> RunDir:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------- logs
    @property
    def log_error(self) -> OSError | None:
        """The first failed write of ``train.log`` (a full disk), if any."""
        return None if self._file_log is None else self._file_log.error

    def filter_log(self, keep: Callable[[logging.LogRecord], bool]) -> None:
        """Write only the records ``keep`` accepts to ``train.log`` while it is open (the
        root logger carries every open run's file log: runs trained side by side in one
        process each keep their own records)."""
        if self._file_log is not None:
            self._file_log.addFilter(keep)

    def log_failure(self, message: str, logger: logging.Logger) -> None:
        """``message`` as an ERROR record of ``train.log`` alone, while it can be written."""
        if self._file_log is not None and self._file_log.error is None:
            record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, None, None)
            self._file_log.handle(record)

    def write_status(self, **fields: Any) -> None:
        """``status.json``: status (running|completed|failed|interrupted), step, error, ..."""
        if self.writes:
            text = json.dumps(fields, indent=2, default=str) + "\n"
            atomic_write(self.path / STATUS, lambda tmp: tmp.write_text(text))

    # ---------------------------------------------------------------- metrics
    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def append_metrics(self, step: int, time_s: float, values: dict[str, Any]) -> None:
        """One line of ``metrics.jsonl``: ``step`` (G step), ``time`` (training seconds so
        far) and the flat tag -> value pairs.  Flushed as written; a crash can at worst
        leave a torn last line, which :func:`read_jsonl` skips."""
        if not self.writes:
            return
        record = {"step": int(step), "time": round(float(time_s), 3)}
        record.update({k: _plain(v) for k, v in values.items()})
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_metrics(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run redoes those steps)."""
        if not (self.writes and self.metrics_path.exists()):
            return
        kept = [line for line in read_jsonl(self.metrics_path) if line.get("step", 0) <= step]
        text = "".join(json.dumps(line) + "\n" for line in kept)
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text(text))

    def logged_tags(self) -> set[str]:
        """Every tag an earlier session of this run wrote to ``metrics.jsonl``."""
        if not self.metrics_path.is_file():
            return set()
        return {k for row in read_jsonl(self.metrics_path) for k in row}

    # ------------------------------------------------------------ TensorBoard
    def tensorboard(self, purge_step: int | None, plan: Plan) -> RunWriter | Silent:
        """The run's one TensorBoard writer (a silent one on ranks that do not write)."""
        if not self.writes:
            return Silent()
        return RunWriter(self.path, purge_step, plan)

    # ---------------------------------------------------------------- samples
    def save_samples(self, grid: torch.Tensor, name: str) -> Path:
        """``samples/<name>``: a (3, H, W) grid in [0, 1] as a PNG."""
        path = self.path / "samples" / name
        return save_image(grid, path) if self.writes else path

    # ------------------------------------------------------------ checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return ckpt_io.checkpoint_dir(self.path)

    @property
    def last(self) -> Path:
        """``checkpoints/last.pt``, what a re-run into this dir resumes from."""
        return self.checkpoint_dir / ckpt_io.LAST

    def save_checkpoint(self, state: dict[str, Any], name: str = ckpt_io.LAST) -> Path:
        """``checkpoints/<name>``, atomically in checkpoint.py's format."""
        path = self.checkpoint_dir / name
        return ckpt_io.save_checkpoint(state, path) if self.writes else path

    # ------------------------------------------------------------ config, history
    def write_text(self, relative: str, text: str) -> Path:
        """``<run dir>/<relative>`` atomically (the config files the CLI writes)."""
        path = self.path / relative
        if self.writes:
            atomic_write(path, lambda tmp: tmp.write_text(text))
        return path

    def copy_history(self, source: Path, step: int) -> None:
        """Give a branched run its parent's history up to ``step``: ``metrics.jsonl`` and the
        TensorBoard event files (the trainer cuts both at ``step`` as a resume in place
        does).  Checkpoints, samples and logs are not copied; ``source`` is only read."""
        if not self.writes:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for f in [source / METRICS, *sorted(source.glob("events.out.tfevents.*"))]:
            if f.is_file():
                shutil.copy2(f, self.path / f.name)
        log.info(
            "branching %s at G step %d into %s; %s is left as it is",
            source,
            step,
            self.path,
            source,
        )


def check_writable(run_dir: Path) -> None:
    """Fail early (a ``ConfigError``) when ``run_dir`` cannot be created or written."""
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"output dir {run_dir}: {probe} exists and is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"output dir {run_dir} is not writable ({probe} denies writing); choose another "
            "with hydra.run.dir=<dir>"
        )


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/Inf; keep them visible as strings
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return _plain(v.item())
    return v


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a ``metrics.jsonl``; a torn last line is skipped."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d is not valid JSON (torn write?); skipped", path, n)
    return out


class _RunLogHandler(logging.FileHandler):
    """``train.log``: a failed write is kept for the run to stop on.

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
