"""``events.jsonl``: every event of a run as one JSON line, text deltas coalesced.

A journal line per token would make the file as large as the transcript many times over; text is
buffered per agent and written as one line when anything else happens to that agent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiofiles
from aiofiles.threadpool.text import AsyncTextIOWrapper

from core.events import Event, TextStreamed

FLUSH_CHARS = 4000


class Journal:
    """An EventBus subscriber appending to ``events.jsonl`` through aiofiles (never blocking the loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: AsyncTextIOWrapper | None = None
        self._text: dict[str, tuple[TextStreamed, list[str], int]] = {}

    async def open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        self._file = await aiofiles.open(self.path, "a", encoding="utf-8")

    async def __call__(self, event: Event) -> None:
        if self._file is None:
            await self.open()
        if isinstance(event, TextStreamed) and event.agent_id is not None:
            first, parts, size = self._text.get(event.agent_id, (event, [], 0))
            parts.append(event.text)
            size += len(event.text)
            self._text[event.agent_id] = (first, parts, size)
            if size >= FLUSH_CHARS:
                await self._flush_text(event.agent_id)
            return
        if event.agent_id is not None and event.agent_id in self._text:
            await self._flush_text(event.agent_id)
        await self._write(event.to_json())
        if event.kind == "run_finished":
            await self.close()

    async def _flush_text(self, agent_id: str) -> None:
        first, parts, _ = self._text.pop(agent_id)
        data = first.to_json()
        data["text"] = "".join(parts)
        await self._write(data)

    async def _write(self, data: dict[str, Any]) -> None:
        assert self._file is not None
        await self._file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        await self._file.flush()

    async def close(self) -> None:
        for agent_id in list(self._text):
            await self._flush_text(agent_id)
        if self._file is not None:
            await self._file.close()
            self._file = None


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events of a journal; a torn last line (a crash mid-write) is skipped."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
