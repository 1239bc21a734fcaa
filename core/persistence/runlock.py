"""One process owns a run: two writers would interleave checkpoints and double-spend the budget.

The lock is an ``flock`` on ``<run_dir>/run.lock``. The kernel drops it when the owner exits,
however it exits (SIGKILL included), so a leftover lock file never blocks a resume; the file's
content (pid, host, start time) only serves the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from core.persistence.atomic import as_disk_error
from core.persistence.rundir import RunDir


class RunLocked(Exception):
    """Another process (or another RunLock in this one) owns the run."""

    def __init__(self, run_id: str, pid: int | None, host: str | None, since: float | None) -> None:
        self.run_id = run_id
        self.pid = pid
        self.host = host
        self.since = since
        where = f"pid {pid}" if pid is not None else "pid unknown"
        if host and host != socket.gethostname():
            where += f" on {host}"
        if since is not None:
            where += " since " + time.strftime("%H:%M", time.localtime(since))
        super().__init__(
            f"run {run_id} is already open in another process ({where}); close it first, "
            f"or watch and steer it with: research-orchestrator attach {run_id}"
        )


class RunLock:
    """Exclusive ownership of a run directory for the lifetime of a ``with`` / ``async with`` block."""

    def __init__(self, run_dir: Path) -> None:
        self.run = RunDir(run_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock now or raise :class:`RunLocked`; never waits."""
        if self._fd is not None:
            raise RuntimeError("this RunLock is already held")
        path = self.run.lock_path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise as_disk_error(exc, path, creating=True) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(self.run.run_id, *holder) from None
        except OSError as exc:
            os.close(fd)
            raise as_disk_error(exc, path) from exc
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        with contextlib.suppress(OSError):  # the record is informative; the flock is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    async def __aenter__(self) -> RunLock:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def owner_pid(run_dir: Path) -> int | None:
    """The pid the lock file names (who owns, or last owned, the run), or None if it names none."""
    try:
        fd = os.open(RunDir(run_dir).lock_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_holder(fd)[0]
    finally:
        os.close(fd)


def _read_holder(fd: int) -> tuple[int | None, str | None, float | None]:
    """Who holds the lock, as far as the lock file says (it may be mid-write: then unknown)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0))
    except (OSError, ValueError):
        return None, None, None
    if not isinstance(record, dict):
        return None, None, None
    pid, host, since = record.get("pid"), record.get("host"), record.get("since")
    return (
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        float(since) if isinstance(since, int | float) else None,
    )
