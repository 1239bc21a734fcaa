"""The agent table touches only the cells whose text changed, and keeps its render caches small."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets.data_table import ColumnKey, RowKey

from core.control import AgentStatus
from core.view import AgentRow
from tui.widgets.agent_table import AgentTable

MARKET = AgentRow(agent_id="market", layer=1, status=AgentStatus.RUNNING, turn=3, searches=9, cost_usd=1.2)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield AgentTable()


async def test_an_unchanged_row_updates_no_cell_and_a_new_cost_updates_one() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        table = app.query_one(AgentTable)
        table.show_row(MARKET)
        await pilot.pause()
        updated: list[str] = []
        update_cell = table.update_cell

        def spy(row_key: RowKey | str, column_key: ColumnKey | str, value: Text, **kwargs: bool) -> None:
            updated.append(str(column_key))
            update_cell(row_key, column_key, value, **kwargs)

        table.update_cell = spy  # type: ignore[method-assign]
        table.show_row(MARKET)
        assert updated == []
        table.show_row(replace(MARKET, cost_usd=1.84))
        assert updated == ["cost"]
        assert str(table.get_cell("market", "cost")).strip() == "$1.84"
        table.show_row(replace(MARKET, cost_usd=1.84, status=AgentStatus.PAUSED))
        assert updated == ["cost", "status"]


async def test_render_caches_stay_bounded_however_many_updates() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 30)) as pilot:
        table = app.query_one(AgentTable)
        rows = [AgentRow(agent_id=f"agent-{i}", layer=1, status=AgentStatus.RUNNING) for i in range(20)]
        for row in rows:
            table.show_row(row)
        for step in range(60):
            for row in rows:
                table.show_row(replace(row, turn=step, cost_usd=step / 10))
            await pilot.pause()
        assert len(table._cell_render_cache) <= AgentTable.CELL_CACHE
        assert len(table._line_cache) <= AgentTable.LINE_CACHE
