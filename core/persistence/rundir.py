"""The run directory contract: where each file of a run lives, and finding a run.

The layout is a contract users and scripts rely on (docs/ARCHITECTURE.md, "Contracts").

Listing the runs and what each is now is the catalogue's job (:mod:`core.catalogue`).

Everything a resume needs is inside ``<runs-dir>/<run_id>/``, including a byte-for-byte copy of
the config the run started with, so a run can be resumed after the user's config has changed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.persistence.atomic import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    RESERVE_NAME,
    DiskError,
    as_disk_error,
    ensure_private_dir,
    fsync_directory,
    read_regular,
    refuse_unsafe,
    remove_stale_temp_files,
    require_space_for_reserve,
    write_atomic,
)
from core.persistence.jsontext import parse_json
from core.safe_text import is_control, printable

logger = logging.getLogger(__name__)
_ID_TIME_FORMAT = "%Y%m%d-%H%M%S"
_ID_RE = re.compile(r"^(\d{8}-\d{6})-(.+)-([0-9a-f]{4})$")
_SLUG_MAX = 40
_REF_MAX_CHARS = 1024
_NAME_MAX_BYTES = 255  # one path component, as most file systems allow
SUMMARY_MAX_BYTES = 64 * 1024 * 1024
# What the run writes by name: none of these may be a link, and each must be of its kind.
_OWN_FILES = (
    "summary.json", "events.jsonl", "report.md", "config.yaml", "run.lock", "run.json", "run.log",
    "owner.log", "owner.pid", RESERVE_NAME,
)  # fmt: skip
_OWN_SOCKETS = ("control.sock",)
_OWN_DIRS = ("checkpoints", "reports", "reports/.stale", "inflight")


class RunRefError(UserError, LookupError):
    """A run reference (id, prefix or path) matches no run or more than one."""


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:_SLUG_MAX].rstrip("-") or "run"


def new_run_id(program_name: str, *, now: float | None = None) -> str:
    """``20261124-100212-sodium-ion-2026-3f2a``: sorts by start time, says what it is, never clashes."""
    stamp = time.strftime(_ID_TIME_FORMAT, time.localtime(time.time() if now is None else now))
    return f"{stamp}-{_slug(program_name)}-{secrets.token_hex(2)}"


def parent_record(run_id: str, checkpoint_id: str) -> dict[str, str]:
    """The ``parent`` value of a forked run's summary.json."""
    return {"run_id": run_id, "checkpoint_id": checkpoint_id}


class RunDir:
    """Paths of one run's files, and the few operations on them that several modules share."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def final_report_path(self) -> Path:
        return self.path / "report.md"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def inflight_dir(self) -> Path:
        """Calls in flight, written ahead (:mod:`core.persistence.inflight`)."""
        return self.path / "inflight"

    @property
    def config_copy_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def lock_path(self) -> Path:
        return self.path / "run.lock"

    @property
    def log_path(self) -> Path:
        return self.path / "run.log"

    @property
    def control_socket_path(self) -> Path:
        """Where the run's owner serves its control channel (``core.remote.channel``)."""
        return self.path / "control.sock"

    @property
    def owner_log_path(self) -> Path:
        """A detached owner's stdout and stderr (``run --detach``)."""
        return self.path / "owner.log"

    @property
    def owner_pid_path(self) -> Path:
        """The pid of a detached owner, written when it is started (before it takes the run lock)."""
        return self.path / "owner.pid"

    @property
    def metadata_path(self) -> Path:
        """``run.json``: where the run runs (simulator or API base URL), written at creation."""
        return self.path / "run.json"

    def report_path(self, agent_id: str) -> Path:
        return self.reports_dir / f"{agent_id}.md"

    @classmethod
    def create(
        cls, runs_dir: Path, run_id: str, config_text: str | bytes, *, metadata: dict[str, Any] | None = None
    ) -> RunDir:
        """Make a new, private run directory holding the config the run starts with.

        It is built under a hidden name and renamed into place whole, so a crash never leaves
        a run directory without its config or its ``run.json`` (``metadata``).
        """
        ensure_private_dir(runs_dir)
        require_space_for_reserve(runs_dir)
        run = cls(Path(runs_dir) / run_id)
        staging = cls(Path(runs_dir) / f".{run_id}.creating")
        try:
            staging.path.mkdir(mode=PRIVATE_DIR_MODE)
            staging.path.chmod(PRIVATE_DIR_MODE)
        except OSError as exc:
            raise as_disk_error(exc, run.path, creating=True) from exc
        try:
            ensure_private_dir(staging.checkpoints_dir)
            ensure_private_dir(staging.reports_dir)
            data = config_text.encode("utf-8") if isinstance(config_text, str) else config_text
            write_atomic(staging.config_copy_path, data, sync_dir=False)
            if metadata is not None:
                staging.write_metadata(metadata)
            if os.path.lexists(run.path):
                raise FileExistsError(errno.EEXIST, "a run with this id exists", str(run.path))
            os.rename(staging.path, run.path)
            fsync_directory(Path(runs_dir).resolve())  # the runs directory may be a link (to a big disk)
        except OSError as exc:
            shutil.rmtree(staging.path, ignore_errors=True)
            raise as_disk_error(exc, run.path, creating=True) from exc
        except BaseException:
            shutil.rmtree(staging.path, ignore_errors=True)
            raise
        return run

    def write_metadata(self, record: dict[str, Any]) -> None:
        write_atomic(self.metadata_path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))

    @classmethod
    def open(cls, runs_dir: Path, run_ref: str | Path) -> RunDir:
        """Find a run by id, unique id prefix, or path; the error says which runs exist or clash."""
        ref = str(run_ref)
        check_run_ref(ref)
        runs_dir = Path(runs_dir)
        if ref and ref not in {".", ".."} and "/" not in ref and (runs_dir / ref).is_dir():
            return cls(runs_dir / ref)
        as_path = Path(ref).expanduser()
        if _looks_like_run(as_path):
            return cls(as_path)
        candidates = sorted(p.name for p in run_dirs(runs_dir) if p.name.startswith(ref)) if ref else []
        if len(candidates) == 1:
            return cls(runs_dir / candidates[0])
        if not candidates:
            raise RunRefError(
                f"no run matches {printable(repr(ref))} in {printable(str(runs_dir))}; "
                "list them with: research-orchestrator runs"
            )
        shown = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
        raise RunRefError(
            f"{printable(repr(ref))} matches {len(candidates)} runs ({printable(shown)}); "
            "give more of the run id"
        )

    def read_summary(self) -> dict[str, Any] | None:
        """The summary, or None when it is missing or unreadable (a listing must not crash on one run)."""
        try:
            value = parse_json(read_regular(self.summary_path, limit=SUMMARY_MAX_BYTES, kind="summary"))
        except (OSError, DiskError, ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def check_sandbox(self) -> None:
        """Refuse a run directory in which a write could land outside it, naming the path.

        A run directory may come from someone else: a link where the run keeps a file or a
        directory (``run.lock`` to your ``~/.bashrc``, ``reports/`` to ``/etc``) would make
        resuming it write there. Only what the run itself reads and writes is checked.
        """
        _require(self.path, directory=True, kind="run directory")
        for name in _OWN_DIRS:
            if os.path.lexists(self.path / name):
                _require(self.path / name, directory=True, kind=f"{name}/ directory")
        for name in _OWN_FILES:
            if os.path.lexists(self.path / name):
                _require(self.path / name, directory=False, kind=name)
        for name in _OWN_SOCKETS:
            if os.path.islink(self.path / name):
                raise refuse_unsafe(self.path / name, name)
        for directory in (self.path / name for name in _OWN_DIRS):
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(directory):
                    if entry.name == ".stale" and directory == self.reports_dir:
                        continue
                    _require(Path(entry.path), directory=False, kind=f"{directory.name}/ files")

    def make_private(self) -> None:
        """Give the run's directories 0700 and its files 0600 again, however they were loosened.

        Called by the process taking ownership (:class:`~core.persistence.runlock.RunLock`): a run
        copied or unpacked with wider modes must not go on appending research to world-readable
        files. Links and other special files are left alone (``check_sandbox`` refuses them).
        """
        _chmod_own(self.path, PRIVATE_DIR_MODE)
        subdirectories = [Path(e.path) for e in _entries(self.path) if e.is_dir(follow_symlinks=False)]
        for directory in (self.path, *subdirectories):
            for entry in _entries(directory):
                if entry.is_dir(follow_symlinks=False):
                    _chmod_own(Path(entry.path), PRIVATE_DIR_MODE)
                elif entry.is_file(follow_symlinks=False):
                    _chmod_own(Path(entry.path), PRIVATE_FILE_MODE)

    def sweep_temp_files(self) -> int:
        """Remove temp files left by a killed writer; only the process holding the run lock may."""
        return sum(remove_stale_temp_files(d) for d in (self.path, self.checkpoints_dir, self.reports_dir))


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except OSError:
        return []


def _chmod_own(path: Path, mode: int) -> None:
    """``chmod`` through a descriptor opened without following a link (a race cannot redirect it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    except OSError as exc:  # another user's file: said, not fatal
        logger.warning("cannot make %s private (%s)", path, exc.strerror)
    finally:
        os.close(fd)


def _require(path: Path, *, directory: bool, kind: str) -> None:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)):
        raise refuse_unsafe(path, kind)


def check_run_ref(ref: str) -> None:
    """A run reference is an id, a prefix or a path: refuse what no run could be called."""
    if not ref:
        raise RunRefError("the run reference is empty; list runs with: research-orchestrator runs")
    parts = ref.split("/")
    if len(ref) > _REF_MAX_CHARS or any(
        len(p.encode("utf-8", "surrogateescape")) > _NAME_MAX_BYTES for p in parts
    ):
        raise RunRefError(
            f"the run reference is too long ({len(ref)} characters) to name a run; give its id, "
            "a unique prefix of it, or its directory (list runs with: research-orchestrator runs)"
        )
    if any(is_control(char) for char in ref):
        raise RunRefError(
            f"the run reference {printable(repr(ref))} contains a control character; "
            "give the run id as `research-orchestrator runs` prints it"
        )


def _looks_like_run(path: Path) -> bool:
    return path.is_dir() and ((path / "config.yaml").is_file() or (path / "summary.json").is_file())


def run_dirs(runs_dir: Path) -> list[Path]:
    """The run directories under ``runs_dir`` (hidden ones, such as a run being created, left out)."""
    try:
        entries = list(runs_dir.iterdir())
    except OSError:
        return []
    return [p for p in entries if not p.name.startswith(".") and _looks_like_run(p)]


def id_parts(run_id: str) -> tuple[float, str] | None:
    """When a run made by :func:`new_run_id` started (epoch seconds, local time) and its program slug."""
    match = _ID_RE.match(run_id)
    if match is None:
        return None
    return time.mktime(time.strptime(match.group(1), _ID_TIME_FORMAT)), match.group(2)
