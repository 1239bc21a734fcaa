"""``events.jsonl``: every event of a run as one JSON line, text deltas coalesced.

A journal line per token would make the file as large as the transcript many times over; text is
buffered per agent and written as one line when anything else happens to that agent. While an app
follows the journal (``prompt()`` is true), text also goes out once it has waited
:data:`TEXT_DELAY_SECONDS`, so the follower sees the stream live; nobody watching, nothing changes.

After each write the journal reports the events it wrote and its new size (``on_written``): an
owner serving attached apps folds exactly what is on disk, so a snapshot and the offset it names
always agree.

A crash can tear the last line; the next process to open the journal ends that line first, so
its own first event starts on a line of its own and is never glued to the torn one. The file is
opened without following links (a run directory may come from someone else).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.events import Event, TextStreamed
from core.persistence.atomic import append, as_disk_error, open_in_run
from core.persistence.jsontext import parse_json

FLUSH_CHARS = 4000
TEXT_DELAY_SECONDS = 0.05

Written = Callable[[list[Event], int], None]


class Journal:
    """An EventBus subscriber appending to ``events.jsonl`` from a worker thread (never blocking the loop)."""

    def __init__(
        self, path: Path, *, on_written: Written | None = None, prompt: Callable[[], bool] | None = None
    ) -> None:
        self.path = path
        self.on_written = on_written
        self.prompt = prompt
        self.offset = 0  # bytes in the file after our last write
        self._fd: int | None = None
        self._text: dict[str, tuple[TextStreamed, list[str], int, float]] = {}

    async def open(self) -> None:
        """Open for appending (a link or a directory there is refused); mend a torn last line."""
        self._fd, self.offset = await asyncio.to_thread(self._open)

    def _open(self) -> tuple[int, int]:
        fd = open_in_run(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, kind="journal")
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                append(fd, b"\n", self.path)
            return fd, os.fstat(fd).st_size
        except OSError as exc:
            os.close(fd)
            raise as_disk_error(exc, self.path) from exc
        except BaseException:
            os.close(fd)
            raise

    async def __call__(self, events: list[Event]) -> None:
        """Append a batch of events as one write: the journal keeps up with any event rate."""
        if self._fd is None:
            await self.open()
        written: list[Event] = []
        finished = False
        for event in events:
            if isinstance(event, TextStreamed) and event.agent_id is not None:
                first, parts, size, since = self._text.get(event.agent_id, (event, [], 0, time.monotonic()))
                parts.append(event.text)
                self._text[event.agent_id] = (first, parts, size + len(event.text), since)
                if size + len(event.text) >= FLUSH_CHARS:
                    written.append(self._text_event(event.agent_id))
                continue
            if event.agent_id is not None and event.agent_id in self._text:
                written.append(self._text_event(event.agent_id))
            written.append(event)
            finished = finished or event.kind == "run_finished"
        if self._text and self.prompt is not None and self.prompt():
            due = time.monotonic() - TEXT_DELAY_SECONDS
            written.extend(self._text_event(a) for a, held in list(self._text.items()) if held[3] <= due)
        await self._write(written)
        if finished:
            await self.close()

    def _text_event(self, agent_id: str) -> TextStreamed:
        """The text an agent streamed since its last line, as one event (the first fragment's stamp)."""
        first, parts, _, _ = self._text.pop(agent_id)
        return replace(first, text="".join(parts))

    async def _write(self, events: list[Event]) -> None:
        if events and self._fd is not None:
            data = "".join(_line(event.to_json()) for event in events).encode("utf-8", "surrogatepass")
            self.offset = await asyncio.to_thread(_append, self._fd, data, self.path)
            if self.on_written is not None:
                self.on_written(events, self.offset)

    async def close(self) -> None:
        try:
            await self._write([self._text_event(agent_id) for agent_id in list(self._text)])
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _append(fd: int, data: bytes, path: Path) -> int:
    """Append, and the file's size after it (the one writer appends: that is where we ended)."""
    append(fd, data, path)
    return os.fstat(fd).st_size


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, default=str) + "\n"


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The events of a journal; a line that is not a JSON object (a crash mid-write, tampering) is skipped.

    Raises :class:`~core.persistence.atomic.UnsafePathError` when the journal is a link or not a file.
    """
    events: list[dict[str, Any]] = []
    if not os.path.lexists(path):
        return events
    fd = open_in_run(path, os.O_RDONLY, kind="journal")  # a link or a directory there: refused
    with os.fdopen(fd, encoding="utf-8", errors="replace") as file:
        text = file.read()
    for line in text.splitlines():
        try:
            event = parse_json(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
