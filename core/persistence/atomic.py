"""Crash-safe file writes inside a run directory, and the one place disk failures become plain words.

A run holds hours of paid work, so every file it keeps is replaced atomically: a crash at any
instant leaves either the previous file or the new one, never a torn mix. Writes are done in a
worker thread by the async variant so that a slow disk cannot stall the event loop's streams.

A run directory may come from someone else, so nothing written here follows a symbolic link:
files are created relative to a directory descriptor opened with ``O_NOFOLLOW``, and a link
where a file or directory should be is refused with :class:`UnsafePathError`, naming the path.

The process that owns a run writes through a handle on its run directory (:class:`RunAnchor`), not
through its path: if the directory is renamed or moved while the run goes on, nothing is ever
re-created at the old path (before, the next checkpoint made ``<old>/checkpoints`` again and the
moved run lost its paid turns); the owner is told once, and stops, saying where its run went.

A full disk must not lose a turn that was paid for: a run keeps a :class:`SpaceReserve`, a
pre-allocated file released on the first ``ENOSPC`` so that the write that failed (and the last
checkpoints, summary and journal lines after it) still fit; the run is then told to stop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from core.errors import UserError

TEMP_SUFFIX = ".tmp"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 8 * 1024 * 1024  # room for a checkpoint per agent, the summary and the journal's tail

_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM}
# File systems that cannot fsync a directory say so with one of these; the data is still safe.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EBADF}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

log = logging.getLogger(__name__)


class DiskError(UserError):
    """A write the run depends on failed; the message tells the user what to do about it."""

    def __init__(self, path: Path, message: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.errno = errno_


class UnsafePathError(DiskError):
    """A path inside a run directory is a symbolic link or the wrong kind of file: refused."""


def _run_name_for(path: Path) -> str | None:
    """The run a file belongs to, so the message can print a resume command that works."""
    for ancestor in [path, *path.parents][:4]:
        with contextlib.suppress(OSError):
            if (ancestor / "config.yaml").is_file() and (ancestor / "checkpoints").is_dir():
                return ancestor.name
    return None


def as_disk_error(exc: OSError, path: Path, *, creating: bool = False) -> DiskError:
    """Turn an OSError about ``path`` into a DiskError whose message names the cause and the fix.

    The fix ends with the ``resume`` command of the run the path belongs to; a path of no run yet
    (the runs directory, a run being created) says to try again instead.
    """
    path = Path(path)
    what = "created" if creating else "written"
    run = _run_name_for(path)
    then = f"resume the run: research-orchestrator resume {run}" if run else "try again"
    code = exc.errno
    if code in _FULL:
        message = f"the disk is full while writing {path}; free space and {then}"
    elif code == errno.EROFS:
        message = (
            f"{path.parent} is on a read-only file system, so {path.name} cannot be {what}; "
            f"make it writable (or pick another --runs-dir) and {then}"
        )
    elif code in _DENIED:
        message = (
            f"{path.parent} is not writable by this user, so {path.name} cannot be {what}; "
            f"fix its permissions (or pick another --runs-dir) and {then}"
        )
    elif code == errno.EISDIR:
        message = f"{path} is a directory, not a file; move it out of the run directory and {then}"
    elif code == errno.ENOTDIR:
        message = (
            f"{path} cannot be {what}: a file is in the way where a directory should be; "
            f"move that file (or pick another --runs-dir) and {then}"
        )
    else:
        reason = exc.strerror or str(exc)
        message = f"{path} could not be {what} ({reason}); fix the cause and {then}"
    return DiskError(path, message, code)


def refuse_unsafe(path: Path, kind: str) -> UnsafePathError:
    """The refusal for a link (or a directory, a device...) where the run keeps its own ``kind``."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        try:
            found = f"a symbolic link to {os.readlink(path)}"
        except OSError:
            found = "a symbolic link"
    elif stat.S_ISDIR(mode):
        found = "a directory"
    elif stat.S_ISREG(mode):
        found = "a file"
    else:
        found = "not a regular file"
    message = (
        f"{path} is {found}, where the run keeps its {kind}; refusing to use it so that nothing "
        "outside the run directory is read or written. If you trust this run directory, replace it "
        "with a real one (or remove it) and try again"
    )
    return UnsafePathError(path, message, errno.ELOOP)


def _open_dir(directory: Path) -> int:
    """A descriptor of ``directory`` itself, never of what a link there points to."""
    anchor, relative = _anchored(directory)
    try:
        if anchor is not None:
            return os.open(relative, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=anchor.fd)
        return os.open(directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.lexists(directory):
            raise refuse_unsafe(directory, "files") from None
        raise


def open_in_run(path: Path, flags: int, *, kind: str, mode: int = PRIVATE_FILE_MODE) -> int:
    """``os.open`` for a run's own file: links refused, and it must be a regular file."""
    path = Path(path)
    anchor, relative = _anchored(path)
    try:
        if anchor is not None:
            fd = os.open(relative, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode, dir_fd=anchor.fd)
        else:
            fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO) and os.path.lexists(path):
            raise refuse_unsafe(path, kind) from None
        raise as_disk_error(exc, path, creating=bool(flags & os.O_CREAT)) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse_unsafe(path, kind)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_regular(path: Path, kind: str) -> tuple[int, int]:
    """A read descriptor of a regular file and its size; links, FIFOs and devices refused."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO) and os.path.lexists(path):
            raise refuse_unsafe(Path(path), kind) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise refuse_unsafe(Path(path), kind)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_regular(path: Path, *, limit: int, kind: str = "files") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; links, FIFOs and devices refused.

    Raises :class:`UnsafePathError` for the wrong kind of file, :class:`OSError` (``EFBIG``) for a
    larger one and other :class:`OSError` as they come (a missing file is ``FileNotFoundError``).
    """
    fd, size = _open_regular(path, kind)
    try:
        if size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_tail(path: Path, *, limit: int, kind: str = "files") -> bytes:
    """The last ``limit`` bytes (or fewer) of a regular file, refused as :func:`read_regular` refuses."""
    fd, size = _open_regular(path, kind)
    try:
        return os.pread(fd, limit, max(0, size - limit))
    finally:
        os.close(fd)


def list_dir(directory: Path, *, kind: str) -> list[str]:
    """The names in a run's own directory, never those of a directory a link there points to."""
    try:
        fd = os.open(directory, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.lexists(directory):
            raise refuse_unsafe(Path(directory), kind) from None
        raise
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (the entry lives in the directory, not the file)."""
    fd = _open_dir(Path(directory))
    try:
        _fsync_dir_fd(fd)
    finally:
        os.close(fd)


def _fsync_dir_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _create_temp(dir_fd: int, name: str) -> tuple[str, int]:
    """A new 0600 temporary file next to ``name`` (``O_EXCL``: never an existing file or link)."""
    for _ in range(100):
        temp = f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
            return temp, os.open(temp, flags, PRIVATE_FILE_MODE, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary file name", name)


def _replace_once(path: Path, data: bytes, mode: int, sync_dir: bool) -> None:
    dir_fd = _open_dir(path.parent)
    try:
        temp: str | None = None
        try:
            temp, fd = _create_temp(dir_fd, path.name)
            try:
                if mode != PRIVATE_FILE_MODE:
                    os.fchmod(fd, mode)
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            # rename() replaces a link at the destination rather than following it.
            os.replace(temp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            temp = None
            if sync_dir:
                _fsync_dir_fd(dir_fd)
        finally:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers and crashes see the old or the new file, whole.

    The temporary file is created 0600 in the same directory (``os.replace`` is atomic only
    within one file system) and removed on failure. ``sync_dir=False`` lets a caller writing many
    files fsync the directory once at the end with :func:`fsync_directory`. On a full disk the
    run's space reserve is released and the write tried once more.
    """
    path = Path(path)
    try:
        _replace_once(path, data, mode, sync_dir)
    except OSError as exc:
        if not (exc.errno in _FULL and release_reserve_for(path, exc)):
            raise as_disk_error(exc, path) from exc
        try:
            _replace_once(path, data, mode, sync_dir)
        except OSError as again:
            raise as_disk_error(again, path) from again


async def write_atomic_async(
    path: Path, data: bytes, *, mode: int = PRIVATE_FILE_MODE, sync_dir: bool = True
) -> None:
    """:func:`write_atomic` in a worker thread: fsync can take a second on a busy disk."""
    import asyncio  # loaded already under a running loop; kept off the import path of `runs`

    await asyncio.to_thread(write_atomic, path, data, mode=mode, sync_dir=sync_dir)


def append(fd: int, data: bytes, path: Path) -> None:
    """Append ``data`` to an open file of the run (``O_APPEND``, one writer), using the reserve on a
    full disk.

    A short write on a full disk would leave part of a line: what was written is cut off again
    (the file goes back to its size before) and the whole of ``data`` is written once the reserve
    has made room, so every line stays whole.
    """
    try:
        before = os.fstat(fd).st_size
        write_all(fd, data)
    except OSError as exc:
        if not (exc.errno in _FULL and release_reserve_for(path, exc)):
            raise as_disk_error(exc, path) from exc
        try:
            os.ftruncate(fd, before)
            write_all(fd, data)
        except OSError as again:
            raise as_disk_error(again, path) from again


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700 directories (runs hold private research)."""
    path = Path(path)
    anchor, relative = _anchored(path)
    if anchor is not None:
        _ensure_under_anchor(anchor, path, relative)
        return
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


def _ensure_under_anchor(anchor: RunAnchor, path: Path, relative: str) -> None:
    """The directories of ``relative`` under the run's own directory, wherever it is now."""
    current = os.dup(anchor.fd)
    try:
        for part in Path(relative).parts:
            created = True
            try:
                os.mkdir(part, PRIVATE_DIR_MODE, dir_fd=current)
            except FileExistsError:
                created = False
            following = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
            if created:
                os.fchmod(current, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.lexists(path):
            raise refuse_unsafe(path, "files") from None
        raise as_disk_error(exc, path, creating=True) from exc
    finally:
        os.close(current)


def remove_stale_temp_files(directory: Path) -> int:
    """Delete temporary files a killed writer left behind; call it only while owning the run."""
    removed = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in Path(directory).iterdir():
            if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)):
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISREG(entry.lstat().st_mode):
                    entry.unlink()
                    removed += 1
    return removed


# --- the space reserve -----------------------------------------------------------------------


class SpaceReserve:
    """Bytes held on the run's disk, given back the first time a write finds the disk full.

    ``on_release(error)`` is called once, from whichever thread hit the full disk, with the
    error that write would have raised: the run should stop, since the reserve is now spent.
    """

    def __init__(self, directory: Path, size: int = RESERVE_BYTES) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RESERVE_NAME
        self.size = size
        self.on_release: Callable[[DiskError], None] | None = None
        self._released = False
        self._lock = threading.Lock()

    @property
    def released(self) -> bool:
        return self._released

    def create(self) -> None:
        """Allocate the reserve (fails with a DiskError when the disk cannot spare it)."""
        fd = open_in_run(self.path, os.O_WRONLY | os.O_CREAT, kind="space reserve")
        try:
            try:
                os.posix_fallocate(fd, 0, self.size)
            except OSError as exc:
                if exc.errno in _FULL:
                    raise
                write_all(fd, bytes(self.size))  # a file system without fallocate
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            if exc.errno in _FULL:
                raise not_enough_space(self.directory.parent, self.size) from exc
            raise as_disk_error(exc, self.path, creating=True) from exc
        finally:
            os.close(fd)
        self._released = False
        _RESERVES[_key(self.directory)] = self

    def release(self, cause: OSError | None = None, path: Path | None = None) -> bool:
        """Give the space back; True if it was held (now or before: a write may retry)."""
        with self._lock:  # held until the space is really free: a concurrent writer retries after
            if _RESERVES.get(_key(self.directory)) is not self:
                return False
            first = not self._released
            if first:
                _unlink_in_run(self.path)
                self._released = True
        if first:
            error = as_disk_error(cause or OSError(errno.ENOSPC, "full"), path or self.path)
            log.warning("disk full: released the %d-byte space reserve of %s", self.size, self.directory)
            if self.on_release is not None:
                self.on_release(error)
        return True

    def close(self) -> None:
        """Stop reserving (the run ended): the file goes, the space is free again."""
        with self._lock:
            if _RESERVES.get(_key(self.directory)) is self:
                del _RESERVES[_key(self.directory)]
        with contextlib.suppress(OSError):
            _unlink_in_run(self.path)


_RESERVES: dict[str, SpaceReserve] = {}


def not_enough_space(runs_dir: Path, size: int = RESERVE_BYTES) -> DiskError:
    """The refusal to start (or resume) a run where its space reserve does not fit."""
    return DiskError(
        Path(runs_dir),
        f"not enough free space in {runs_dir} to run safely (a run keeps {size // (1024 * 1024)} MiB "
        "in reserve so that a full disk never loses a paid turn); free some space and try again",
        errno.ENOSPC,
    )


def require_space_for_reserve(runs_dir: Path, size: int = RESERVE_BYTES) -> None:
    """Refuse before anything is created when the reserve cannot fit: no run directory is left
    behind by a run that could not start."""
    try:
        info = os.statvfs(runs_dir)
    except OSError:
        return  # cannot tell: the reserve itself is the check
    if info.f_bavail * info.f_frsize < size:
        raise not_enough_space(runs_dir, size)


def _key(directory: Path) -> str:
    return os.path.abspath(directory)


def release_reserve_for(path: Path, cause: OSError | None = None) -> bool:
    """Release the reserve of the run ``path`` belongs to (a file of it, or of a subdirectory)."""
    for directory in Path(path).parents[:2]:
        reserve = _RESERVES.get(_key(directory))
        if reserve is not None:
            return reserve.release(cause, Path(path))
    return False


# --- the owner's handle on its run directory ---------------------------------------------------


class RunAnchor:
    """The owner's descriptor of its run directory, which every write of the run goes through.

    Files of the run (the directory and two levels below it) are opened relative to the descriptor,
    so they land in the directory itself, wherever it has been moved, and never at its old path.
    Each such open first checks that the path still leads to it: the first time it does not,
    ``on_moved(message)`` is called once (from whichever thread wrote), naming where it went.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.key = _key(self.directory)
        self.fd = -1
        self.on_moved: Callable[[str], None] | None = None
        self.moved: str | None = None  # the message, once the directory has moved
        self._identity: tuple[int, int] = (0, 0)
        self._lock = threading.Lock()

    def open(self) -> None:
        fd = _open_dir(self.directory)
        info = os.fstat(fd)
        self.fd, self._identity = fd, (info.st_dev, info.st_ino)
        _ANCHORS[self.key] = self

    def close(self) -> None:
        if _ANCHORS.get(self.key) is self:
            del _ANCHORS[self.key]
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def where(self) -> Path | None:
        """Where the directory is now (Linux), or None when it was removed or cannot be told."""
        try:
            target = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            return None
        return None if target.endswith(" (deleted)") else Path(target)

    def check(self) -> None:
        try:
            info = os.stat(self.key, follow_symlinks=False)
            here = (info.st_dev, info.st_ino) == self._identity
        except OSError:
            here = False
        if here:
            return
        with self._lock:
            if self.moved is not None:
                return
            self.moved = self._moved_message()
        log.warning("%s", self.moved)
        if self.on_moved is not None:
            self.on_moved(self.moved)

    def _moved_message(self) -> str:
        now = self.where()
        if now is None:
            return (
                f"the run directory {self.directory} was removed while the run was going; stopping "
                "(nothing is written at its old path again)"
            )
        return (
            f"the run directory {self.directory} was moved to {now} while the run was going; stopping "
            f"(its files are there; nothing is written at the old path). Continue it where it is now: "
            f"research-orchestrator resume {now.name} --runs-dir {now.parent}"
        )


_ANCHORS: dict[str, RunAnchor] = {}
_ANCHOR_DEPTH = 3  # the run directory, its subdirectories (checkpoints/, reports/) and their files


def _anchored(path: Path) -> tuple[RunAnchor | None, str]:
    """The anchor ``path`` lies under (checked for a move) and its path relative to it."""
    if not _ANCHORS:
        return None, ""
    absolute = _key(path)
    candidate = absolute
    for _ in range(_ANCHOR_DEPTH):
        anchor = _ANCHORS.get(candidate)
        if anchor is not None:
            anchor.check()
            return anchor, os.path.relpath(absolute, candidate)
        candidate = os.path.dirname(candidate)
    return None, ""


def _unlink_in_run(path: Path) -> None:
    anchor, relative = _anchored(path)
    with contextlib.suppress(FileNotFoundError):
        if anchor is not None:
            os.unlink(relative, dir_fd=anchor.fd)
        else:
            os.unlink(path)
