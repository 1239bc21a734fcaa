"""Which runs are live: a run is live while a process answers on its control socket.

A detached owner needs a few seconds to start (importing the SDK, starting the simulator) before
it serves; ``run --detach`` does not wait for it, so its pid is recorded in ``owner.pid`` and a
front end that attaches meanwhile waits for that process rather than failing. The record stays:
a pid counts only while its process is alive and is the detached owner of this run.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import EXIT_FAILED
from core.persistence.atomic import DiskError, read_regular, read_tail, write_atomic
from core.persistence.rundir import RunDir
from core.persistence.runlock import owner_pid
from core.remote.address import OwnerUnreachable, answers
from core.safe_text import printable

STARTING_WITHIN_SECONDS = 120.0
_PID_MAX_BYTES = 64
_LOG_TAIL_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class LiveOwner:
    pid: int | None  # as the run lock (or owner.pid) records it; None if unreadable
    serving: bool  # False while a detached owner is still starting


def record_starting_owner(run_dir: RunDir, pid: int) -> None:
    write_atomic(run_dir.owner_pid_path, f"{pid}\n".encode())


def _starting_pid(run: RunDir) -> int | None:
    """The detached owner's pid while that process is alive (it serves once it has started)."""
    try:  # guarded: a FIFO or a link to /dev/zero planted there must not hang `runs`
        pid = int(read_regular(run.owner_pid_path, limit=_PID_MAX_BYTES, kind="owner.pid").strip())
    except (OSError, DiskError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    proc = Path(f"/proc/{pid}")
    with contextlib.suppress(OSError):
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None  # it has exited (a zombie its parent has not reaped)
        if os.fsencode(run.path.name) not in (proc / "cmdline").read_bytes():
            return None  # the pid now belongs to another program
    return pid


def live_owner(run_dir: Path) -> LiveOwner | None:
    """The process that owns ``run_dir`` now (or is starting to), or None when nobody does."""
    run = RunDir(run_dir)
    if answers(run.control_socket_path):
        return LiveOwner(owner_pid(run.path), serving=True)
    starting = _starting_pid(run)
    return LiveOwner(starting, serving=False) if starting is not None else None


async def wait_until_serving(run_dir: Path, within: float = STARTING_WITHIN_SECONDS) -> bool:
    """Wait while a detached owner starts; True once it serves, False if it is not (or no longer) starting."""
    import asyncio  # here: ``runs`` lists owners without loading an event loop

    run = RunDir(run_dir)
    deadline = asyncio.get_running_loop().time() + within
    while True:
        owner = await asyncio.to_thread(live_owner, run.path)
        if owner is None or owner.serving:
            return owner is not None
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)  # polling a starting process's socket; nothing to wait on instead


class NoLiveOwner(OwnerUnreachable):
    """Nobody owns the run, told by the scriptable commands (``attach --headless``, ``control``)
    with exit code 4, the command line's "failed"; the app's ``attach`` keeps its exit code 2."""

    exit_code = EXIT_FAILED


def not_live(run: RunDir, error: type[OwnerUnreachable] = OwnerUnreachable) -> OwnerUnreachable:
    """The error for attaching to a run nobody owns: how to continue it, and why its owner stopped."""
    summary = run.read_summary() or {}
    if summary.get("status") == "completed":
        ended = f"it completed (see {run.final_report_path}); nothing is left to run"
    else:
        ended = f"continue it with: research-orchestrator resume {run.run_id}"
    message = f"run {run.run_id} is not live: no process owns it; {ended}"
    log = _tail(run.owner_log_path) if os.path.lexists(run.owner_log_path) else ""
    if log:
        message += f"\nthe end of its owner's log ({run.owner_log_path}):\n{log}"
    return error(message)


def _tail(path: Path, lines: int = 12) -> str:
    """The last lines of the owner's log, read as every run file is (never through a link)."""
    try:
        data = read_tail(path, limit=_LOG_TAIL_BYTES, kind="owner.log")
    except DiskError as exc:
        return f"(not shown: {exc.message})"
    except OSError as exc:
        return f"(cannot read it: {exc.strerror})"
    text = printable(data.decode("utf-8", errors="replace"), keep_newlines=True)
    return "\n".join(text.splitlines()[-lines:])
