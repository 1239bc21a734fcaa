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

from core.errors import UserError
from core.persistence.atomic import DiskError, as_disk_error, open_in_run, read_regular
from core.persistence.jsontext import parse_json
from core.persistence.rundir import RunDir


class RunLocked(UserError):
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
        fd = open_in_run(path, os.O_RDWR | os.O_CREAT, kind="lock file")  # a link there is refused
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(self.run.run_id, *holder) from None
        except OSError as exc:
            os.close(fd)
            raise as_disk_error(exc, path) from exc
        self.run.make_private()  # the owner keeps what it appends to private, however the run arrived
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
        data = read_regular(RunDir(run_dir).lock_path, limit=4096, kind="lock file")
    except (OSError, DiskError):
        return None
    return _parse_holder(data)[0]


def owner_alive(run_dir: Path) -> bool:
    """Whether a live process holds the run: a ``running`` summary without one is stale.

    The pid in the lock file answers cheaply (a pid that is gone settles it); a live pid may have
    been reused by another program, so the lock itself is then probed. Without read access to
    the lock file, or for an owner on another host, the answer is "alive": it cannot be disproved.
    """
    path = RunDir(run_dir).lock_path
    try:
        data = read_regular(path, limit=4096, kind="lock file")
    except FileNotFoundError:
        return False
    except (OSError, DiskError):
        return True
    pid, host, _ = _parse_holder(data)
    if host is not None and host != socket.gethostname():
        return True
    if pid is not None and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass  # alive, owned by another user
    return _lock_held(path)


def _lock_held(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock at once
    return False


def _read_holder(fd: int) -> tuple[int | None, str | None, float | None]:
    """Who holds the lock, as far as the lock file says (it may be mid-write: then unknown)."""
    try:
        data = os.pread(fd, 4096, 0)
    except OSError:
        return None, None, None
    return _parse_holder(data)


def _parse_holder(data: bytes) -> tuple[int | None, str | None, float | None]:
    try:
        record = parse_json(data)
    except ValueError:
        return None, None, None
    if not isinstance(record, dict):
        return None, None, None
    pid, host, since = record.get("pid"), record.get("host"), record.get("since")
    return (
        pid if isinstance(pid, int) else None,
        host if isinstance(host, str) else None,
        float(since) if isinstance(since, int | float) else None,
    )
