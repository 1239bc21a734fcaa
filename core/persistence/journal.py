"""``events.jsonl``: every event of a run as one JSON line, text deltas coalesced.

A journal line per token would make the file as large as the transcript many times over; text is
buffered per agent and written as one line when anything else happens to that agent. While an app
follows the journal (``prompt()`` is true), text also goes out once it has waited
:data:`TEXT_DELAY_SECONDS`, so the follower sees the stream live; nobody watching, nothing changes.

After each write the journal reports the events it wrote and its new size (``on_written``): an
owner serving attached apps folds exactly what is on disk, so a snapshot and the offset it names
always agree.

The journal is durable state, as the checkpoints are: ``verify``, resume's refusal to pay twice and
an attached app all read it. A write that fails is never shrugged off: the journal stops writing
and hands the error to ``on_failed`` (the run's owner stops the run as failed, as it does when a
checkpoint cannot be written); without one, it raises.

A crash can tear the last line; the next process to open the journal cuts it off (it is logged in
``run.log`` as evidence), so every line of the file stays one JSON object and its own first event
starts on a line of its own. The file is opened without following links (a run directory may come
from someone else).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, assert_never

from core import events as ev
from core.persistence.atomic import DiskError, append, as_disk_error, open_in_run
from core.persistence.journal_read import iter_journal
from core.persistence.jsontext import parse_json

FLUSH_CHARS = 4000
TEXT_DELAY_SECONDS = 0.05
_TAIL_CHUNK = 64 * 1024
_SHOWN_BYTES = 300
log = logging.getLogger(__name__)

Written = Callable[[list[ev.Event], int], None]
Failed = Callable[[DiskError], None]


class Journal:
    """An EventBus subscriber appending to ``events.jsonl`` from a worker thread (never blocking the loop)."""

    def __init__(
        self,
        path: Path,
        *,
        on_written: Written | None = None,
        prompt: Callable[[], bool] | None = None,
        on_failed: Failed | None = None,
    ) -> None:
        self.path = path
        self.on_written = on_written
        self.prompt = prompt
        self.on_failed = on_failed
        self.failed: DiskError | None = None  # the write that failed; nothing is written after it
        self.offset = 0  # bytes in the file after our last write
        self._fd: int | None = None
        self._torn: str | None = None  # what recovery cut off, logged with the first events
        self._text: dict[str, tuple[ev.TextStreamed, list[str], int, float]] = {}

    async def open(self) -> None:
        """Open for appending (a link or a directory there is refused); mend a torn last line."""
        self._fd, self.offset = await asyncio.to_thread(self._open)

    def _open(self) -> tuple[int, int]:
        fd = open_in_run(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, kind="journal")
        try:
            self._torn = _mend_tail(fd, self.path)
            return fd, os.fstat(fd).st_size
        except OSError as exc:
            os.close(fd)
            raise as_disk_error(exc, self.path) from exc
        except BaseException:
            os.close(fd)
            raise

    async def __call__(self, events: list[ev.Event]) -> None:
        """Append a batch of events as one write: the journal keeps up with any event rate.

        A failed write (or open) stops the journal and goes to ``on_failed``, once."""
        if self.failed is not None:
            return  # the run is stopping over the first failure: nothing more is written or torn
        try:
            await self._record(events)
        except DiskError as error:
            self.failed = error
            if self.on_failed is None:
                raise
            self.on_failed(error)

    async def _record(self, events: list[ev.Event]) -> None:
        if self._fd is None:
            await self.open()
        if self._torn is not None:  # said now, when the run's log is open (it opens after the journal)
            log.warning("%s", self._torn)
            self._torn = None
        written: list[ev.Event] = []
        finished = False
        for event in events:
            match event:
                case ev.TextStreamed() if event.agent_id is not None:
                    self._buffer(event.agent_id, event, written)
                    continue
                case ev.RunFinished():
                    finished = True
                case (
                    ev.TextStreamed()  # (no agent: written as it is)
                    | ev.RunStarted()
                    | ev.LayerStarted()
                    | ev.LayerFinished()
                    | ev.AgentStarted()
                    | ev.AttemptAbandoned()
                    | ev.AttemptCharged()
                    | ev.SearchIssued()
                    | ev.SearchResultsReceived()
                    | ev.CitationReceived()
                    | ev.TurnCompleted()
                    | ev.AgentPausing()
                    | ev.AgentPaused()
                    | ev.AgentResumed()
                    | ev.AgentInterrupted()
                    | ev.AgentBudgetWaitStarted()
                    | ev.AgentBudgetWaitEnded()
                    | ev.AgentKilled()
                    | ev.AgentSkipped()
                    | ev.AgentFinished()
                    | ev.AgentFailed()
                    | ev.StopReasonUnhandled()
                    | ev.RetryScheduled()
                    | ev.ApiErrorRaised()
                    | ev.ContextCompacted()
                    | ev.BudgetUpdated()
                    | ev.BudgetCapReached()
                    | ev.CheckpointSaved()
                    | ev.DiskErrorRaised()
                    | ev.SubscriberFailed()
                    | ev.IncidentsRecalled()
                    | ev.RunStopping()
                    | ev.BatchSubmitted()
                    | ev.BatchProgress()
                    | ev.BatchEnded()
                    | ev.AgentBatched()
                ):
                    pass  # written as it is
                case _:
                    assert_never(event)
            if event.agent_id is not None and event.agent_id in self._text:
                written.append(self._text_event(event.agent_id))  # its text first: the order holds
            written.append(event)
        if self._text and self.prompt is not None and self.prompt():
            due = time.monotonic() - TEXT_DELAY_SECONDS
            written.extend(self._text_event(a) for a, held in list(self._text.items()) if held[3] <= due)
        await self._write(written)
        if finished:
            await self.close()

    def _buffer(self, agent_id: str, event: ev.TextStreamed, written: list[ev.Event]) -> None:
        """Hold a fragment of an agent's text; a long enough run of them goes out as one line."""
        first, parts, size, since = self._text.get(agent_id, (event, [], 0, time.monotonic()))
        parts.append(event.text)
        self._text[agent_id] = (first, parts, size + len(event.text), since)
        if size + len(event.text) >= FLUSH_CHARS:
            written.append(self._text_event(agent_id))

    def _text_event(self, agent_id: str) -> ev.TextStreamed:
        """The text an agent streamed since its last line, as one event (the first fragment's stamp)."""
        first, parts, _, _ = self._text.pop(agent_id)
        return replace(first, text="".join(parts))

    async def _write(self, events: list[ev.Event]) -> None:
        if events and self._fd is not None:
            data = "".join(_line(event.to_json()) for event in events).encode("utf-8", "surrogatepass")
            self.offset = await asyncio.to_thread(_append, self._fd, data, self.path)
            if self.on_written is not None:
                self.on_written(events, self.offset)

    async def close(self) -> None:
        try:
            if self.failed is None:
                await self._write([self._text_event(agent_id) for agent_id in list(self._text)])
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _mend_tail(fd: int, path: Path) -> str | None:
    """A last line without its newline: ended if it is a whole event, else cut off, saying what."""
    size = os.fstat(fd).st_size
    if not size or os.pread(fd, 1, size - 1) == b"\n":
        return None
    start = _last_line_start(fd, size)
    torn = os.pread(fd, size - start, start)
    try:
        whole = isinstance(parse_json(torn), dict)
    except (ValueError, UnicodeDecodeError):
        whole = False
    if whole:  # the crash came between the event and its newline
        append(fd, b"\n", path)
        return None
    os.ftruncate(fd, start)
    shown = torn[:_SHOWN_BYTES].decode("utf-8", "replace")
    more = "..." if len(torn) > _SHOWN_BYTES else ""
    what = f"its last line was torn by a crash ({len(torn)} bytes, not JSON) and is cut off"
    return f"{path.name}: {what}: {shown!r}{more}"


def _last_line_start(fd: int, size: int) -> int:
    end = size
    while end > 0:
        begin = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - begin, begin).rfind(b"\n")
        if newline >= 0:
            return begin + newline + 1
        end = begin
    return 0


def _append(fd: int, data: bytes, path: Path) -> int:
    """Append, and the file's size after it (the one writer appends: that is where we ended)."""
    append(fd, data, path)
    return os.fstat(fd).st_size


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, default=str) + "\n"


def inherit_records(source: Path, target: Path, kind: str, ids: Iterable[str], key: str) -> int:
    """Append to the journal ``target`` the events of ``kind`` in ``source`` whose ``key`` is one of
    ``ids``: a fork inherits the records of the checkpoints it copied, so its own journal vouches
    for every checkpoint it holds. Returns how many were copied."""
    wanted = set(ids)
    lines = [_line(event) for event in iter_journal(source, [kind]) if event.get(key) in wanted]
    if not lines:
        return 0
    fd = open_in_run(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, kind="journal")
    try:
        append(fd, "".join(lines).encode("utf-8", "surrogatepass"), target)
    finally:
        os.close(fd)
    return len(lines)
