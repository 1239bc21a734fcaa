"""The text area of an agent pane: a :class:`~tui.feed.LineBuffer`, wrapped at the width it is drawn at.

Textual's ``Log`` changes its ``virtual_size`` on every new line, and ``virtual_size`` is a layout
reactive: with 20 streaming panes that made every frame a layout of the whole screen plus a
repaint of every pane's scrollbar (most of the app's CPU under load). This view is not a scroll
container. It draws the last lines that fit (or, once the user scrolls back, a fixed window),
caches each rendered line, and a write only repaints the view itself. Scrolling back (keys,
mouse wheel) and mouse selection are kept; instead of a scrollbar the view reports how far back
it is (:class:`StreamView.Scrolled`) so its pane can say so in its border.

The buffer keeps lines as written (unwrapped); the view wraps them at its current width: a write
re-wraps only the line it continues, and a new width (a pane maximised, restored, or a terminal
resized) or a new buffer (the pane now shows another agent) re-wraps the bounded tail, so text
streamed at one width never shows cut at another.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.highlighter import Highlighter
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget

from tui.feed import LineBuffer
from tui.wrap import wrap_all

_CONTROL = re.compile("[\u0000-\u0014]")


class StreamView(Widget, can_focus=True):
    DEFAULT_CSS = """
    StreamView { background: $surface; color: $text; }
    StreamView:focus { background-tint: $foreground 5%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_lines(-1)", "Up", show=False),
        Binding("down", "scroll_lines(1)", "Down", show=False),
        Binding("pageup", "scroll_pages(-1)", "Page up", show=False),
        Binding("pagedown", "scroll_pages(1)", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "follow", "Follow", show=False),
    ]
    ALLOW_SELECT = True

    @dataclass
    class Scrolled(Message):
        """The view moved: ``behind`` lines are below it (0: it follows the stream)."""

        view: StreamView
        behind: int

    def __init__(self, *, max_lines: int = 400, id: str | None = None) -> None:
        super().__init__(id=id)
        self.highlighter: Highlighter | None = None
        self.buffer = LineBuffer(max_lines, max_chars=max_lines * 200)
        self._seen = 0  # the buffer's lines that ``_counts`` covers (its last one may have grown since)
        self._dropped = 0  # the buffer's ``dropped`` when last synced
        self._counts: list[int] = []  # rows each logical line wraps to at ``_wrap_width``
        self._wrap_width = 0  # 0: not drawn yet, lines are not wrapped
        self._lines: list[str] = []  # the rows: logical lines wrapped at ``_wrap_width``
        self._top: int | None = None  # first line shown when scrolled back; None: follow the end
        self._cache: dict[int, Strip] = {}
        self._cache_width = -1
        self._behind = 0

    # --- content ------------------------------------------------------------------------------

    @property
    def lines(self) -> Sequence[str]:
        """The rows held (wrapped at the width last drawn at), oldest first; read only."""
        return self._lines

    @property
    def line_count(self) -> int:
        """Lines with content: a trailing empty line (after a final newline) is not one yet."""
        lines = self._lines
        return len(lines) - (1 if lines and lines[-1] == "" else 0)

    def _wrap(self, line: str) -> list[str]:
        if self._wrap_width <= 0 or len(line) < self._wrap_width // 2:  # short lines cannot wrap
            return [line]
        return wrap_all(line, self._wrap_width).split("\n")

    def show(self, buffer: LineBuffer) -> None:
        """Show another buffer (a pane bound to another agent), from its end."""
        self.buffer = buffer
        self._top = None
        self._rewrap(self._wrap_width)
        self._report_position()
        self.refresh()

    def write(self, data: str) -> None:
        """Append ``data`` to the buffer shown; its first piece continues the last line."""
        self.buffer.write(data)
        self.sync()

    def sync(self) -> None:
        """Catch up with what was written to the buffer: re-wrap only the lines that changed, and
        repaint only the rows that changed when no row was added (the usual flush: the open line
        grew)."""
        buffer = self.buffer
        dropped = buffer.dropped - self._dropped
        if dropped >= len(self._counts):
            self._rewrap(self._wrap_width)
            self._report_position()
            self.refresh()
            return
        counts, lines = self._counts, self._lines
        rows_before = len(lines)
        if dropped:
            gone = sum(counts[:dropped])
            del counts[:dropped], lines[:gone]
            self._dropped, self._seen = buffer.dropped, self._seen - dropped
            self._cache.clear()
            if self._top is not None:
                self._top = max(0, self._top - gone)
        first_line = max(0, self._seen - 1)  # the line that was open may have grown
        first = len(lines) - sum(counts[first_line:])
        del counts[first_line:], lines[first:]
        for line in buffer.lines[first_line:]:
            rows = self._wrap(line)
            counts.append(len(rows))
            lines.extend(rows)
        self._seen = len(buffer.lines)
        for stale in [key for key in self._cache if key >= first]:
            del self._cache[stale]
        if self._top is None:
            if dropped or len(lines) != rows_before:
                self.refresh()  # the rows shown moved up
            else:
                self.refresh(Region(0, first - self.top, self.size.width, len(lines) - first))
        else:
            self._report_position()
            if first < self._top + self.size.height:
                self.refresh()

    def _rewrap(self, width: int) -> None:
        """Wrap every held line at ``width`` (a new width or a new buffer)."""
        self._wrap_width = width
        self._lines, self._counts = [], []
        for line in self.buffer.lines:
            rows = self._wrap(line)
            self._counts.append(len(rows))
            self._lines.extend(rows)
        self._seen, self._dropped = len(self.buffer.lines), self.buffer.dropped
        self._cache.clear()
        if self._top is not None:
            self._top = min(self._top, max(0, self.line_count - self.size.height))

    # --- scrolling ----------------------------------------------------------------------------

    @property
    def following(self) -> bool:
        return self._top is None

    @property
    def top(self) -> int:
        """Index of the first line shown."""
        if self._top is not None:
            return self._top
        return max(0, self.line_count - self.size.height)

    def scroll_to_line(self, top: int | None) -> None:
        """Show from line ``top`` (None, or the last page: follow the stream again)."""
        last_top = max(0, self.line_count - self.size.height)
        if top is not None and top >= last_top:
            top = None
        if top is not None:
            top = max(0, top)
        if top != self._top:
            self._top = top
            self._report_position()
            self.refresh()

    def action_scroll_lines(self, delta: int) -> None:
        self.scroll_to_line(self.top + delta)

    def action_scroll_pages(self, pages: int) -> None:
        self.scroll_to_line(self.top + pages * max(1, self.size.height - 1))

    def action_scroll_home(self) -> None:
        self.scroll_to_line(0)

    def action_follow(self) -> None:
        self.scroll_to_line(None)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.top > 0:
            self.scroll_to_line(self.top - 3)
            event.stop()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if not self.following:
            self.scroll_to_line(self.top + 3)
            event.stop()

    def _report_position(self) -> None:
        behind = 0 if self._top is None else max(0, self.line_count - self._top - self.size.height)
        if behind != self._behind:
            self._behind = behind
            self.post_message(self.Scrolled(self, behind))

    # --- rendering ----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def refresh_style(self) -> None:
        """The highlighter's styles changed (a new theme): render every line again."""
        self._cache.clear()
        self.refresh()

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract("\n".join(self._lines)), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._cache.clear()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        wrap_at = max(8, width - 1)  # a free column at the right, so text never touches the border
        if wrap_at != self._wrap_width and width > 0:
            self._rewrap(wrap_at)
        if width != self._cache_width:
            self._cache.clear()
            self._cache_width = width
        top = self.top
        if y == 0 and self._cache:  # keep only what can be on screen: strips are heavy objects
            for stale in [key for key in self._cache if key < top or key >= top + self.size.height]:
                del self._cache[stale]
        index = top + y
        if index >= self.line_count:
            return Strip.blank(width, self.rich_style)
        selection = self.text_selection
        if selection is None:
            strip = self._cache.get(index)
            if strip is None:
                strip = self._cache[index] = self._render_strip(index, width, None)
            return strip
        return self._render_strip(index, width, selection)

    def _render_strip(self, index: int, width: int, selection: Selection | None) -> Strip:
        line = _CONTROL.sub("\ufffd", self._lines[index].expandtabs())
        text = Text(line, no_wrap=True)
        text.stylize(self.rich_style)  # a span, not the base style: ``render`` ignores that without spans
        if self.highlighter is not None:
            self.highlighter.highlight(text)
        if selection is not None and (span := selection.get_span(index)) is not None:
            start, end = span
            text.stylize(
                self.screen.get_component_rich_style("screen--selection"),
                start,
                len(text) if end == -1 else end,
            )
        strip = Strip(text.render(self.app.console), cell_len(line))
        return strip.crop_extend(0, width, self.rich_style).apply_offsets(0, index)
