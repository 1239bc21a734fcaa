"""The roster: one row per agent (layer, status glyph, id, turn, searches, dollars, retries).

Like the design sketch, cells carry their unit (``t4  12s  $1.84  0r``) instead of a header row.
The cursor row is the "selected agent" that pause, kill, checkpoints and report act on.

A line-API widget rather than a ``DataTable``: a layer of 100 agents changes a few rows' counters
four times a second, and ``DataTable`` keys every render cache by one update counter for the whole
table, so each change re-rendered every visible row (most of the app's frame time with 100
agents). Here each row's line is cached on its own and a change repaints only that row; moving the
cursor repaints two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.theme import Theme

from core.control import GLYPHS
from core.lifecycle import IN_BATCH
from core.view import AgentRow
from tui.format import short
from tui.widgets.colors import status_style

BATCH_GLYPH = "⧗"
"""An agent whose request waits in its layer's Message Batch (its row's note says ``in batch``)."""
COLUMNS = ("status", "agent", "turn", "searches", "cost", "retries")
_COLUMN_META = [Style.from_meta({"column": column}) for column in range(len(COLUMNS))]


class AgentTable(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    AgentTable {
        background: $surface; color: $foreground; overflow-x: hidden; scrollbar-size-vertical: 1;
        height: auto; max-height: 100%;
    }
    AgentTable:focus { background-tint: $foreground 5%; }
    AgentTable > .agent-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    AgentTable:focus > .agent-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    """
    COMPONENT_CLASSES = {"agent-table--cursor"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Previous agent", show=False),
        Binding("down", "cursor(1)", "Next agent", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First agent", show=False),
        Binding("end", "last", "Last agent", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    ID_WIDTH = 13

    cursor_row: reactive[int] = reactive(0, always_update=False, repaint=False)

    @dataclass
    class RowHighlighted(Message):
        """The cursor moved to ``agent_id``'s row."""

        table: AgentTable
        agent_id: str

    @dataclass
    class RowSelected(Message):
        """``enter`` (or a click on the cursor row) on ``agent_id``'s row."""

        table: AgentTable
        agent_id: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows_by_id: dict[str, AgentRow] = {}
        self._order: list[str] = []  # agent ids, top to bottom
        self._index: dict[str, int] = {}  # agent id -> its row
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._widths = [0] * len(COLUMNS)
        self._lines: dict[str, tuple[bool, int, Strip]] = {}  # agent -> (cursor, width, line)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: Theme) -> None:
        for row in list(self.rows_by_id.values()):
            self.show_row(row)  # the glyph colours come from the theme
        self._restyle()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def _restyle(self) -> None:
        self._lines.clear()
        self.refresh()

    def on_focus(self) -> None:
        self._restyle()

    def on_blur(self) -> None:
        self._restyle()

    # --- rows -----------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    def _row_cells(self, row: AgentRow) -> tuple[Text, ...]:
        batched = bool(row.note and row.note.startswith(IN_BATCH))  # waits in a Message Batch
        mark = BATCH_GLYPH if batched else GLYPHS[row.status]
        glyph = Text.assemble(f"L{row.layer} ", (mark, status_style(self.app, row.status)), " ")
        dim = "dim" if row.status.value == "pending" else ""

        def right(value: str) -> Text:
            return Text(f" {value}", justify="right", style=dim)

        # Every figure once the agent has begun (t0 while its first turn is in flight); none before.
        begun = row.started or bool(row.turn or row.searches or row.cost_usd or row.retries)
        return (
            glyph,
            Text(short(row.agent_id, self.ID_WIDTH), style=dim),
            right(f"t{row.turn}" if begun else ""),
            right(f"{row.searches}s" if begun else ""),
            right(f"${row.cost_usd:.2f}" if begun else ""),
            right(f"{row.retries}r" if begun else ""),
        )

    def set_rows(self, rows: tuple[AgentRow, ...]) -> None:
        """The whole roster anew (a new run or a new layer's agents), keeping the selection."""
        selected = self.selected_agent
        self.rows_by_id.clear()
        self._order.clear()
        self._index.clear()
        self._cells.clear()
        self._widths = [0] * len(COLUMNS)
        self._lines.clear()
        self.virtual_size = Size(0, 0)
        for row in rows:
            self.show_row(row)
        self.cursor_row = min(self.cursor_row, max(0, self.row_count - 1))
        if selected is not None:
            self.select_agent(selected)
        self.refresh()

    def show_row(self, row: AgentRow) -> None:
        """Add ``row`` or update it; only a row whose text changed is repainted."""
        agent = row.agent_id
        self.rows_by_id[agent] = row
        cells = self._row_cells(row)
        if agent not in self._cells:
            self._index[agent] = len(self._order)
            self._order.append(agent)
        elif [_signature(c) for c in self._cells[agent]] == [_signature(c) for c in cells]:
            return
        self._cells[agent] = cells
        self._lines.pop(agent, None)
        widths = [max(w, c.cell_len) for w, c in zip(self._widths, cells, strict=True)]
        size = Size(sum(widths), len(self._order))
        if size != self.virtual_size:
            self.virtual_size = size
        if widths != self._widths:  # a wider cell moves the columns of every row
            self._widths = widths
            self._restyle()
        else:
            self.refresh_line(self._index[agent])
        if len(self._order) == 1:
            self._highlighted()

    def row_text(self, agent_id: str) -> str:
        """The row as it reads on screen (plain text)."""
        return "".join(cell.plain for cell in self._cells.get(agent_id, ()))

    # --- the cursor -----------------------------------------------------------------------------

    @property
    def selected_agent(self) -> str | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def select_agent(self, agent_id: str) -> None:
        if agent_id in self.rows_by_id:
            self.move_cursor(self._index[agent_id])

    def move_cursor(self, row: int) -> None:
        if self._order:
            self.cursor_row = max(0, min(row, len(self._order) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh_line(old)
        self.refresh_line(new)
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True)
        self._highlighted()

    def _highlighted(self) -> None:
        agent = self.selected_agent
        if agent is not None:
            self.post_message(self.RowHighlighted(self, agent))

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, pages: int) -> None:
        self.move_cursor(self.cursor_row + pages * max(1, self.size.height - 1))

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._order) - 1)

    def action_select(self) -> None:
        agent = self.selected_agent
        if agent is not None:
            self.post_message(self.RowSelected(self, agent))

    def on_click(self, event: events.Click) -> None:
        row = event.y + self.scroll_offset.y
        if 0 <= row < len(self._order):
            if row == self.cursor_row:
                self.action_select()
            self.move_cursor(row)

    # --- rendering ------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        width = self.size.width
        if index >= len(self._order):
            return Strip.blank(width, self.rich_style)
        agent = self._order[index]
        cursor = index == self.cursor_row
        cached = self._lines.get(agent)
        if cached is not None and cached[0] == cursor and cached[1] == width:
            return cached[2]
        line = self._render_row(agent, cursor, width)
        self._lines[agent] = (cursor, width, line)
        return line

    def _render_row(self, agent: str, cursor: bool, width: int) -> Strip:
        text = Text(no_wrap=True, end="")
        for column, (cell, column_width) in enumerate(zip(self._cells[agent], self._widths, strict=True)):
            pad = " " * (column_width - cell.cell_len)
            piece = Text(pad) + cell if cell.justify == "right" else cell + Text(pad)
            piece.stylize_before(_COLUMN_META[column])  # a segment per cell, as terminals and SVGs expect
            text.append_text(piece)
        base: Style = self.rich_style
        text.pad_right(max(0, width - cell_len(text.plain)))
        text.stylize_before(base)
        if cursor:
            text.stylize(self.get_component_rich_style("agent-table--cursor"))
        segments = list(text.render(self.app.console))
        return Strip(segments, text.cell_len).crop_extend(0, width, base)


def _signature(text: Text) -> object:
    """What a cell looks like (rich's ``Text ==`` ignores the base style)."""
    return (text.plain, str(text.style), text.spans, text.justify)
