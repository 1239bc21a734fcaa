"""Processes as /proc shows them, for tests that start programs (no pytest import: the wheel smoke
test in .ci/ uses the tmux helper that uses this)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def proc_stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, tty_nr, …)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """``pid`` runs and is not a zombie waiting to be reaped."""
    try:
        return proc_stat(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(entry.name)] = int(proc_stat(int(entry.name))[1])
    found, frontier = set(roots), set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
