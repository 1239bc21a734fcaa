"""An agent's live transcript as data, kept whether or not a pane is showing it.

A layer of 100 agents has 100 feeds but only as many pane widgets as fit the screen: the main
screen binds feeds to a fixed set of panes (the selected agent's and the most active). Showing
another agent rebinds a pane, a repaint of that pane, where a pane per agent made it a layout of
the whole screen; a hidden agent costs an append to a list.

Fragments are held until a :class:`~tui.coalesce.Coalescer` flushes every dirty feed together
(about ten times a second), so each frame carries all the text that arrived for it. A trailing
partial word waits for the rest, so a wrapped line never ends in half a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.view import AgentRow
from tui.coalesce import Coalescer


class LineBuffer:
    """Lines as written (unwrapped), the last one still open; the oldest whole lines are dropped
    once there are more than ``max_lines`` or more than ``max_chars`` characters."""

    SLACK = 64  # lines (and a quarter of max_chars) held beyond the bound, so dropping is rare

    def __init__(self, max_lines: int = 400, max_chars: int = 20_000) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.lines: list[str] = []
        self.dropped = 0  # lines dropped from the start so far: a view counts what it has seen by it
        self.version = 0  # writes so far
        self._chars = 0

    def write(self, data: str) -> None:
        """Append ``data``: its first piece continues the open line, each newline opens another."""
        if not data:
            return
        lines = self.lines
        if not lines:
            lines.append("")
        pieces = data.split("\n")
        lines[-1] += pieces[0]
        lines.extend(pieces[1:])
        self.version += 1
        self._chars += len(data)
        if len(lines) > self.max_lines + self.SLACK or self._chars > self.max_chars * 5 // 4:
            self._drop()

    def _drop(self) -> None:
        lines, drop, chars = self.lines, 0, self._chars
        while drop < len(lines) - 1 and (len(lines) - drop > self.max_lines or chars > self.max_chars):
            chars -= len(lines[drop]) + 1
            drop += 1
        del lines[:drop]
        self.dropped += drop
        self._chars = chars

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class FeedWatcher(Protocol):
    """What shows a feed (a pane): told when its text or its row changed."""

    def feed_written(self) -> None: ...

    def feed_row_changed(self) -> None: ...


@dataclass(slots=True)
class _Note:
    text: str


class AgentFeed:
    """One agent's stream (text, notes, turn ends) and its latest roster row."""

    MAX_LINES = 400
    TAIL_CHARS = 20_000  # the full transcript is in the run directory
    HOLD_MAX = 40  # a partial word longer than this is written anyway

    def __init__(self, row: AgentRow, flusher: Coalescer) -> None:
        self.row = row
        self.buffer = LineBuffer(self.MAX_LINES, self.TAIL_CHARS)
        self.watcher: FeedWatcher | None = None
        self.flushes = 0
        self._flusher = flusher
        self._pending: list[str | _Note] = []
        self._held = ""
        self._release_held = False

    @property
    def agent_id(self) -> str:
        return self.row.agent_id

    @property
    def text(self) -> str:
        """The bounded, unwrapped tail of what the feed has shown."""
        return self.buffer.text

    def show_row(self, row: AgentRow) -> None:
        self.row = row
        if self.watcher is not None:
            self.watcher.feed_row_changed()

    def append_text(self, text: str) -> None:
        self._pending.append(text)
        self._flusher.mark(self)

    def add_note(self, text: str) -> None:
        self._pending.append(_Note(text))
        self._flusher.mark(self)

    def end_turn(self, *, paragraph: bool = False) -> None:
        """The model stopped: a held-back partial word is complete now.

        With ``paragraph`` the next turn's text starts on a new paragraph instead of being glued
        to the last word of this one.
        """
        if paragraph:
            self._pending.append("\n\n")
        self._release_held = True
        self._flusher.mark(self)

    def close(self) -> None:
        """The feed is gone (its agent finished and its layer ended): nothing more is flushed."""
        self._flusher.discard(self)
        self.watcher = None

    def flush(self) -> None:
        items, self._pending = self._pending, []
        before = self.buffer.version
        for item in items:
            if isinstance(item, _Note):
                self.buffer.write(self._take_held(all_of_it=True))
                lines = self.buffer.lines
                start = "" if not lines or lines[-1] == "" else "\n"
                self.buffer.write(f"{start}{item.text}\n")
            else:
                self._held += item
        release, self._release_held = self._release_held, False
        self.buffer.write(self._take_held(all_of_it=release))
        if self.buffer.version != before:
            self.flushes += 1
            if self.watcher is not None:
                self.watcher.feed_written()

    def _take_held(self, *, all_of_it: bool) -> str:
        """The buffered text up to its last whitespace (the rest may be half a word)."""
        text = self._held
        cut = len(text) if all_of_it else max(text.rfind(" "), text.rfind("\n")) + 1
        if not all_of_it and len(text) - cut > self.HOLD_MAX:
            cut = len(text)
        self._held = text[cut:]
        return text[:cut]
