"""Calls in flight, written ahead: what a crash would otherwise make the run forget it spent.

A call's cost reaches a checkpoint only once it settles. A process killed while a call is in
flight (``kill -9``, an out-of-memory kill, a power cut) may have been billed for it, and a
resume restoring the last checkpoint would not know: its caps would then let it spend that money
again. So before each attempt is sent, the agent's entry here is replaced (atomically, fsynced)
by the attempt's worst case and how many of the agent's reservations the ledger had closed; an
entry whose attempt the restored ledger has not closed is charged that worst case on resume,
unless it was marked released (the attempt failed billed nothing: a retry after a 429 may wait a
minute, and a crash in that wait must not charge it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from core.persistence.atomic import list_dir, read_regular, write_atomic_async
from core.persistence.jsontext import parse_json

log = logging.getLogger(__name__)

ENTRY_LIMIT = 64 * 1024
KIND = "in-flight records"
SUFFIX = ".json"


class InFlightLog:
    """One file per agent (``inflight/<agent>.json``) holding its latest attempt's entry."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._last: dict[str, dict[str, Any]] = {}  # per agent: the entry last written

    def _path(self, agent_id: str) -> Path:
        return self.directory / f"{agent_id}{SUFFIX}"

    async def write(self, agent_id: str, entry: dict[str, Any]) -> None:
        """Replace ``agent_id``'s entry; returns once it is on disk (the attempt is sent after)."""
        record = {"agent_id": agent_id, **entry}
        self._last[agent_id] = record
        await write_atomic_async(self._path(agent_id), json.dumps(record, sort_keys=True).encode("utf-8"))

    async def release(self, agent_id: str) -> None:
        """The attempt last written ahead for ``agent_id`` failed billed nothing (never sent, or
        refused before it ran): its entry is marked ``released`` (its spend floor kept), so a
        resume does not charge it. Nothing is written if no entry was."""
        record = self._last.pop(agent_id, None)
        if record is not None:
            data = json.dumps({**record, "released": True}, sort_keys=True).encode("utf-8")
            await write_atomic_async(self._path(agent_id), data)

    def read_all(self) -> dict[str, dict[str, Any]]:
        """Every agent's entry (blocking: call it in a thread); unreadable entries are skipped, as an
        entry is only ever a bound the run can do without."""
        if not self.directory.is_dir():
            return {}
        entries: dict[str, dict[str, Any]] = {}
        for name in list_dir(self.directory, kind=KIND):
            if not name.endswith(SUFFIX):
                continue
            try:  # a link or a FIFO planted here is refused (UnsafePathError), as everywhere in a run
                data = read_regular(self.directory / name, limit=ENTRY_LIMIT, kind=KIND)
                entry = parse_json(data)
            except (OSError, ValueError) as error:
                log.warning("in-flight record %s unreadable (%s): not charged", name, error)
                continue
            agent_id = entry.get("agent_id") if isinstance(entry, dict) else None
            if isinstance(agent_id, str) and name == f"{agent_id}{SUFFIX}":
                entries[agent_id] = entry
        return entries
