"""One writer per run dir: ``<run dir>/.lock`` names the holder and is held with ``flock``.

Two processes writing one run dir (a second ``gansn-train`` into a running run, a
re-submitted job) interleave checkpoints and logs from different trajectories.  The lock
file holds ``{"pid", "host", "started"}`` so a refusal can name the holder.  Liveness is the
kernel's ``flock``, not the pid: the kernel drops it when its holder dies however it dies
(SIGKILL, OOM killer), so a lock file whose lock is free is stale on this host and is taken
over, with no pid-reuse false alarms and no race between two processes taking it over.  A
free lock written by another host is not taken over: gansn cannot tell from here whether
that run still goes on (a network filesystem may not share ``flock`` between hosts).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from gansn.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class RunDirLocked(ConfigError):
    """Another live process writes the run dir (a refusal of bad input: exit code 2)."""


class RunLock:
    """``with RunLock(run_dir):`` -- exclusive writer of ``run_dir`` (created if needed).

    Raises :class:`RunDirLocked`, naming the holder, while another process (or another
    ``RunLock`` of this one) holds it.  Taken once per run, by its
    :class:`~gansn.training.rundir.RunDir`.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is held already by this RunLock")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd, previous = self._lock_file()
        try:
            if previous and previous.get("host") != socket.gethostname():
                raise RunDirLocked(
                    f"run dir {self.run_dir} was locked by {_describe(previous)} and gansn "
                    f"cannot tell from {socket.gethostname()} whether that run still goes on; "
                    f"if it does not, delete {self.path} and run again"
                )
            if previous:
                log.warning(
                    "taking over the stale lock of %s in %s (that process is gone)",
                    _describe(previous),
                    self.run_dir,
                )
            mine = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(mine) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)  # closing drops the flock; the file stays for its owner
            raise
        self._fd = fd

    def _lock_file(self) -> tuple[int, dict[str, Any] | None]:
        """Open and flock the lock file -> (fd, the previous holder's record or None)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = _read(fd)
                os.close(fd)
                if err.errno in _NO_FLOCK:
                    # a filesystem without flock: fall back to asking whether the pid lives
                    if _alive_here(holder):
                        raise self._in_use(holder) from None
                    return os.open(self.path, os.O_RDWR | os.O_CLOEXEC), holder
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise self._in_use(holder) from None
                raise
            # a holder that released between our open and flock unlinked the file we hold:
            # locking that orphan would let a third process lock a new file beside us
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd, _read(fd)
            os.close(fd)

    def _in_use(self, holder: dict[str, Any] | None) -> RunDirLocked:
        return RunDirLocked(
            f"run dir {self.run_dir} is in use by {_describe(holder)}; wait for it to finish "
            "or stop it, or choose another run dir with hydra.run.dir=<dir>"
        )

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # unlink while still holding the flock, so no one locks the file being removed
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any] | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive_here(holder: dict[str, Any] | None) -> bool:
    """Whether ``holder`` is a live process of this host other than this one."""
    if not holder or holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('started')})"
