"""The roster: one row per agent (layer, status glyph, id, turn, searches, dollars, retries).

Like the design sketch, cells carry their unit (``t4  12s  $1.84  0r``) instead of a header row.

Rows are keyed by agent id and updated cell by cell, only the cells whose text changed; the cursor
row is the "selected agent" that pause, kill, checkpoints and report act on.
"""

from __future__ import annotations

import contextlib

from rich.text import Text
from textual.binding import Binding
from textual.theme import Theme
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist, RowKey

from core.control import GLYPHS
from core.view import AgentRow
from tui.format import short
from tui.widgets.colors import status_style

COLUMNS = ("status", "agent", "turn", "searches", "cost", "retries")


class AgentTable(DataTable[Text]):
    DEFAULT_CSS = """
    AgentTable { background: $surface; scrollbar-size-vertical: 1; }
    AgentTable > .datatable--header { background: $surface; color: $text-muted; text-style: none; }
    """
    BINDINGS = [
        Binding("home", "scroll_top", "First agent", show=False),
        Binding("end", "scroll_bottom", "Last agent", show=False),
    ]
    ID_WIDTH = 13
    # DataTable keys its render caches by an update counter, so every cell update strands what
    # was cached; at the default sizes (10,000 cells) the dead entries were tens of thousands of
    # objects that each full garbage collection had to walk. A few screens' worth is enough.
    CELL_CACHE = 2000
    LINE_CACHE = 300

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cell_padding=0, show_header=False)
        self.rows_by_id: dict[str, AgentRow] = {}
        self._shown: dict[str, dict[str, Text]] = {}
        self._cell_render_cache.maxsize = self.CELL_CACHE
        for cache in (self._row_render_cache, self._row_renderable_cache, self._line_cache):
            cache.maxsize = self.LINE_CACHE

    def on_mount(self) -> None:
        for key in COLUMNS:
            self.add_column("", key=key)  # no header: cells carry their units
        self.app.theme_changed_signal.subscribe(self, self._on_theme_changed)

    def _on_theme_changed(self, _theme: Theme) -> None:
        for row in list(self.rows_by_id.values()):
            self.show_row(row)

    def _cells(self, row: AgentRow) -> dict[str, Text]:
        glyph = Text.assemble(f"L{row.layer} ", (GLYPHS[row.status], status_style(self.app, row.status)), " ")
        dim = "dim" if row.status.value == "pending" else ""

        def right(value: str) -> Text:
            return Text(f" {value}", justify="right", style=dim)

        return {
            "status": glyph,
            "agent": Text(short(row.agent_id, self.ID_WIDTH), style=dim),
            "turn": right(f"t{row.turn}" if row.turn else ""),
            "searches": right(f"{row.searches}s" if row.turn or row.searches else ""),
            "cost": right(f"${row.cost_usd:.2f}" if row.cost_usd else ""),
            "retries": right(f"{row.retries}r" if row.turn or row.retries else ""),
        }

    def set_rows(self, rows: tuple[AgentRow, ...]) -> None:
        selected = self.selected_agent
        self.clear()
        self.rows_by_id.clear()
        self._shown.clear()
        for row in rows:
            self.show_row(row)
        if selected is not None:
            self.select_agent(selected)

    def show_row(self, row: AgentRow) -> None:
        self.rows_by_id[row.agent_id] = row
        cells = self._cells(row)
        shown = self._shown.get(row.agent_id)
        self._shown[row.agent_id] = cells
        if shown is None or RowKey(row.agent_id) not in self.rows:
            self.add_row(*(cells[key] for key in COLUMNS), key=row.agent_id)
            return
        for key, value in cells.items():
            if _signature(shown.get(key)) != _signature(value):
                with contextlib.suppress(CellDoesNotExist):
                    self.update_cell(row.agent_id, key, value, update_width=True)

    @property
    def selected_agent(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return str(key.value) if key.value is not None else None

    def select_agent(self, agent_id: str) -> None:
        try:
            index = self.get_row_index(agent_id)
        except RowDoesNotExist:
            return
        self.move_cursor(row=index)


def _signature(text: Text | None) -> object:
    """What a cell looks like (rich's ``Text ==`` ignores the base style)."""
    return None if text is None else (text.plain, str(text.style), text.spans, text.justify)
