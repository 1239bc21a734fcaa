"""Following ``events.jsonl`` from an offset: each read starts where the last one ended.

An attached app is told the journal's new size by the owner and reads only the bytes it has not
seen, so following a run costs what the run writes, never a re-read of hours of history. A line
still being written (no newline yet) waits for the next read; a line that is not an event is
logged and skipped, so one damaged line cannot stop the follower.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from core.persistence.atomic import open_in_run
from core.persistence.jsontext import parse_json

logger = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024


class JournalTail:
    """Reads the complete lines appended to a journal since the last read."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = Path(path)
        self.offset = offset  # the next byte to read (a partial last line is held in memory)
        self.skipped = 0
        self._partial = b""
        self._fd: int | None = None

    async def read(self, upto: int | None = None) -> list[dict[str, Any]]:
        """The events written since the last call, up to byte ``upto`` (or the end of the file)."""
        chunk = await asyncio.to_thread(self._read_bytes, upto)
        if not chunk:
            return []
        data = self._partial + chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data
            return []
        self._partial = data[end + 1 :]
        events: list[dict[str, Any]] = []
        for line in data[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                event = parse_json(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                events.append(event)
            else:
                self.skipped += 1
                logger.warning("journal %s: skipped a line that is not an event: %r", self.path, line[:80])
        return events

    def _read_bytes(self, upto: int | None) -> bytes:
        if self._fd is None:
            self._fd = open_in_run(self.path, os.O_RDONLY, kind="journal")  # never through a link
        parts: list[bytes] = []
        position = self.offset
        while upto is None or position < upto:
            want = READ_CHUNK if upto is None else min(READ_CHUNK, upto - position)
            block = os.pread(self._fd, want, position)
            if not block:
                break
            parts.append(block)
            position += len(block)
        data = b"".join(parts)
        self.offset += len(data)
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
