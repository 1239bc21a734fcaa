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

    async def __call__(self, events: list[Event]) -> None:
        """Append a batch of events as one write: the journal keeps up with any event rate."""
        if self._file is None:
            await self.open()
        lines: list[str] = []
        finished = False
        for event in events:
            if isinstance(event, TextStreamed) and event.agent_id is not None:
                first, parts, size = self._text.get(event.agent_id, (event, [], 0))
                parts.append(event.text)
                self._text[event.agent_id] = (first, parts, size + len(event.text))
                if size + len(event.text) >= FLUSH_CHARS:
                    lines.append(self._text_line(event.agent_id))
                continue
            if event.agent_id is not None and event.agent_id in self._text:
                lines.append(self._text_line(event.agent_id))
            lines.append(_line(event.to_json()))
            finished = finished or event.kind == "run_finished"
        await self._write(lines)
        if finished:
            await self.close()

    def _text_line(self, agent_id: str) -> str:
        first, parts, _ = self._text.pop(agent_id)
        data = first.to_json()
        data["text"] = "".join(parts)
        return _line(data)

    async def _write(self, lines: list[str]) -> None:
        if lines and self._file is not None:
            await self._file.write("".join(lines))
            await self._file.flush()

    async def close(self) -> None:
        await self._write([self._text_line(agent_id) for agent_id in list(self._text)])
        if self._file is not None:
            await self._file.close()
            self._file = None


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, default=str) + "\n"


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
