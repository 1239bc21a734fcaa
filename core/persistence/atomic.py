"""Crash-safe file writes and the one place disk failures become plain-words errors.

A run holds hours of paid work, so every file it keeps is replaced atomically: a crash at any
instant leaves either the previous file or the new one, never a torn mix. Writes are done in a
worker thread by the async variant so that a slow disk cannot stall the event loop's streams.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM}
# File systems that cannot fsync a directory say so with one of these; the data is still safe.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EBADF}


class DiskError(Exception):
    """A write the run depends on failed; the message tells the user what to do about it."""

    def __init__(self, path: Path, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.errno = errno_


def _run_name_for(path: Path) -> str:
    """The run a file belongs to, so the message can print a resume command that works."""
    for ancestor in [path, *path.parents][:4]:
        with contextlib.suppress(OSError):
            if (ancestor / "config.yaml").is_file() and (ancestor / "checkpoints").is_dir():
                return ancestor.name
    return "RUN"


def as_disk_error(exc: OSError, path: Path, *, creating: bool = False) -> DiskError:
    """Turn an OSError about ``path`` into a DiskError whose message names the cause and the fix."""
    path = Path(path)
    what = "created" if creating else "written"
    resume = f"research-orchestrator resume {_run_name_for(path)}"
    code = exc.errno
    if code in _FULL:
        message = f"the disk is full while writing {path}; free space and resume the run: {resume}"
    elif code == errno.EROFS:
        message = (
            f"{path.parent} is on a read-only file system, so {path.name} cannot be {what}; "
            f"make it writable (or pick another --runs-dir) and resume the run: {resume}"
        )
    elif code in _DENIED:
        message = (
            f"{path.parent} is not writable by this user, so {path.name} cannot be {what}; "
            f"fix its permissions (or pick another --runs-dir) and resume the run: {resume}"
        )
    else:
        reason = exc.strerror or str(exc)
        message = f"{path} could not be {what} ({reason}); fix the cause and resume the run: {resume}"
    return DiskError(path, message, code)


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (the entry lives in the directory, not the file)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers and crashes see the old or the new file, whole.

    The temporary file is created 0600 in the same directory (``os.replace`` is atomic only
    within one file system) and removed on failure. ``sync_dir=False`` lets a caller writing many
    files fsync the directory once at the end with :func:`fsync_directory`.
    """
    path = Path(path)
    temp: Path | None = None
    try:
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        temp = Path(temp_name)
        try:
            if mode != PRIVATE_FILE_MODE:
                os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        temp = None
        if sync_dir:
            fsync_directory(path.parent)
    except OSError as exc:
        raise as_disk_error(exc, path) from exc
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink()


async def write_atomic_async(
    path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE, sync_dir: bool = True
) -> None:
    """:func:`write_atomic` in a worker thread: fsync can take a second on a busy disk."""
    import asyncio  # loaded already under a running loop; kept off the import path of `runs`

    await asyncio.to_thread(write_atomic, path, data, mode=mode, sync_dir=sync_dir)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 directories (runs hold private research)."""
    path = Path(path)
    missing = [p for p in [path, *path.parents] if not p.exists()]
    try:
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=PRIVATE_DIR_MODE)
                os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    except OSError as exc:
        raise as_disk_error(exc, path, creating=True) from exc


def remove_stale_temp_files(directory: Path) -> int:
    """Delete temporary files a killed writer left behind; call it only while owning the run."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in Path(directory).iterdir():
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX) and entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
    return removed
