"""The agent table repaints only the rows that changed, scrolls with its cursor, and says what is selected."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App, ComposeResult

from core.control import AgentStatus
from core.view import AgentRow
from tests.waits import until
from tui.widgets.agent_table import AgentTable

MARKET = AgentRow(agent_id="market", layer=1, status=AgentStatus.RUNNING, turn=3, searches=9, cost_usd=1.2)


def agents(n: int) -> list[AgentRow]:
    running = AgentStatus.RUNNING
    return [AgentRow(agent_id=f"agent-{i:03d}", layer=1, status=running, turn=1) for i in range(n)]


class TableApp(App[None]):
    CSS = "AgentTable { height: 10; }"

    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[str] = []
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield AgentTable()

    def on_agent_table_row_highlighted(self, message: AgentTable.RowHighlighted) -> None:
        self.highlighted.append(message.agent_id)

    def on_agent_table_row_selected(self, message: AgentTable.RowSelected) -> None:
        self.selected.append(message.agent_id)


def count_renders(table: AgentTable) -> list[str]:
    rendered: list[str] = []
    render = table._render_row

    def spy(agent: str, cursor: bool, width: int) -> object:
        rendered.append(agent)
        return render(agent, cursor, width)

    table._render_row = spy  # type: ignore[method-assign,assignment]
    return rendered


async def test_a_changed_counter_repaints_its_row_only_and_an_unchanged_row_nothing() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(AgentTable)
        for row in [MARKET, *agents(8)]:
            table.show_row(row)
        await pilot.pause()
        rendered = count_renders(table)
        table.show_row(MARKET)
        await pilot.pause()
        assert rendered == []
        table.show_row(replace(MARKET, cost_usd=1.84))  # the same width: no other row moves
        await pilot.pause()
        assert rendered == ["market"]
        assert "$1.84" in table.row_text("market")
        rendered.clear()
        await pilot.press("down")
        assert sorted(rendered) == ["agent-000", "market"]  # the cursor left one row for another


async def test_a_wider_cell_realigns_every_row() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(AgentTable)
        for row in agents(3):
            table.show_row(row)
        await pilot.pause()
        table.show_row(replace(agents(3)[1], cost_usd=123.45))
        await pilot.pause()
        painted = [table.render_line(y).text for y in range(3)]
        assert len({line.rstrip().index("t1") for line in painted}) == 1  # the columns line up
        assert len({len(line.rstrip()) for line in painted}) == 1  # "0r" right-aligned in every row
        assert painted[1].rstrip().endswith("$123.45 0r")


async def test_keys_and_clicks_move_the_cursor_and_the_table_scrolls_to_it() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(AgentTable)
        for row in agents(100):
            table.show_row(row)
        table.focus()
        await pilot.pause()
        assert table.selected_agent == "agent-000"
        await pilot.press("down", "down")
        assert table.selected_agent == "agent-002" and app.highlighted[-1] == "agent-002"
        await pilot.press("end")
        await until(pilot, lambda: table.scroll_offset.y == 90, "the table scrolled to its end")
        assert table.selected_agent == "agent-099"
        assert table.render_line(9).text.rstrip().startswith("L1 ● agent-099")
        await pilot.press("pageup")
        assert table.cursor_row == 99 - 9
        await pilot.press("home")
        assert table.selected_agent == "agent-000"
        await until(pilot, lambda: table.scroll_offset.y == 0, "the table scrolled back")
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == ["agent-000"]
        await pilot.click(AgentTable, offset=(2, 3))
        assert table.selected_agent == "agent-003"
        await pilot.click(AgentTable, offset=(2, 3))  # a click on the selected row selects it
        await pilot.pause()
        assert app.selected == ["agent-000", "agent-003"]


async def test_a_new_roster_keeps_the_selected_agent() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 20)) as pilot:
        table = app.query_one(AgentTable)
        table.set_rows(tuple(agents(5)))
        table.select_agent("agent-003")
        table.set_rows(tuple(reversed(agents(5))))
        await pilot.pause()
        assert table.selected_agent == "agent-003" and table.cursor_row == 1
        table.set_rows(())
        assert table.selected_agent is None and table.row_count == 0
