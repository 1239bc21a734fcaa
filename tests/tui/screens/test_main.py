"""The main screen under a stream: text goes straight to the agents' feeds, flushed together; counters
are throttled; as many panes as fit show the selected and the most active agents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from core import events as ev
from core.control import AgentStatus
from core.view import AgentRow
from tests.tui.conftest import settle
from tests.tui.fakes import RUN_ID, FakeRun, at
from tests.tui.waits import settled
from tests.waits import until
from tui import messages as msg
from tui.app import ResearchApp
from tui.screens.main import MainScreen
from tui.widgets.agent_pane import AgentPane


async def test_text_that_arrives_before_the_agents_pane_is_shown_in_it(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert "cross-tech" not in screen.feeds  # layer 2: pending
        screen.stream_note("cross-tech", '🔍 "cross-chemistry cost curves"')
        screen.stream_text("cross-tech", "Costs converge ")
        screen.post_message(
            msg.AgentRowChanged(AgentRow(agent_id="cross-tech", layer=2, status=AgentStatus.RUNNING))
        )
        screen.stream_text("cross-tech", "by 2028.")
        screen.stream_turn_ended("cross-tech", False)
        expected = '🔍 "cross-chemistry cost curves"\nCosts converge by 2028.\n\n'
        await until(pilot, lambda: getattr(screen.feed("cross-tech"), "text", None) == expected, "the text")


async def test_counters_repaint_within_a_quarter_second_and_a_status_change_at_once(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        market = screen.table.rows_by_id["market"]
        screen.post_message(msg.AgentRowChanged(replace(market, turn=5, cost_usd=2.0)))
        await until(pilot, lambda: screen.table.rows_by_id["market"].cost_usd == 2.0, "the first cost", 2.0)
        for cost in (2.1, 2.2):  # within the quarter second that follows: held, latest value wins
            screen.post_message(msg.AgentRowChanged(replace(market, turn=5, cost_usd=cost)))
        await pilot.pause()
        assert screen.table.rows_by_id["market"].cost_usd == 2.0
        await until(pilot, lambda: screen.table.rows_by_id["market"].cost_usd == 2.2, "the latest cost")
        pane = screen.pane("market")
        assert pane is not None and pane.border_title == "market ▸ turn 5 ─ 12 searches ─ $2.20"
        screen.post_message(
            msg.AgentRowChanged(replace(market, turn=5, cost_usd=2.2, status=AgentStatus.PAUSED))
        )
        await pilot.pause()
        assert screen.table.rows_by_id["market"].status == AgentStatus.PAUSED
        assert pane.border_subtitle == "paused"


async def test_streaming_panes_flush_together_and_idle_panes_are_left_alone(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        feeds = screen.feeds
        before = {agent: feed.flushes for agent, feed in feeds.items()}
        batches = screen._flusher.flushes
        for _ in range(50):
            screen.stream_text("market", "more tenders ")
            screen.stream_text("chemistry", "more cathodes ")
        await settled(pilot)
        after = {agent: feed.flushes for agent, feed in feeds.items()}
        assert screen._flusher.flushes == batches + 1
        assert after["market"] == before["market"] + 1
        assert after["chemistry"] == before["chemistry"] + 1
        assert {a: n for a, n in after.items() if a not in ("market", "chemistry")} == {
            a: n for a, n in before.items() if a not in ("market", "chemistry")
        }


async def test_escape_after_maximise_gives_the_keys_back_to_the_agent_table(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        first = screen.table.selected_agent
        await pilot.press("f")
        assert screen.maximized is not None
        await pilot.press("escape")
        await pilot.pause()
        assert screen.maximized is None
        assert screen.table.has_focus
        await pilot.press("down")
        assert screen.table.selected_agent not in (None, first)


async def test_lines_streamed_while_maximised_fit_the_restored_pane(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        pane = screen.pane("market")
        assert pane is not None
        await pilot.press("f")
        await until(pilot, lambda: screen.maximized is pane and pane.content_region.width > 100, "maximised")
        wide = pane.content_region.width
        for n in range(40):
            screen.stream_text("market", f"streamed-while-wide word{n} ")
        await settled(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: 0 < pane.view.size.width < wide - 20, "the restored pane")
        narrow = pane.view.size.width
        assert narrow < wide
        shown = [pane.view.render_line(y).text.rstrip() for y in range(pane.view.size.height)]
        assert all(len(line) <= narrow for line in shown)
        assert any("word39" in line for line in shown)
        assert not any(line.endswith("-") or line.startswith("wide") for line in shown), shown


async def test_a_small_terminal_shows_the_table_and_the_selected_agents_pane(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert [pane.agent_id for pane in screen.shown_panes()] == ["market"]
        (pane,) = screen.query(AgentPane)
        await pilot.press("down")
        await until(pilot, lambda: screen.pane("chemistry") is not None, "chemistry's pane")
        assert screen.shown_panes() == [pane] and pane.agent_id == "chemistry"  # the same pane, rebound
        assert screen.pane("market") is None
        assert "4 panes hidden" in str(screen.query_one("#agents").border_subtitle)


def many_agents_script(n: int) -> list[ev.Event]:
    agents = tuple((f"agent-{i:03d}", 1, f"Topic {i}") for i in range(n))
    script: list[ev.Event] = [
        ev.RunStarted(run_id=RUN_ID, at=at(0), program="wide", run_dir="runs/x", agents=agents),
        ev.LayerStarted(run_id=RUN_ID, at=at(0), layer=1, agent_ids=tuple(a for a, _, _ in agents)),
    ]
    script += [
        ev.AgentStarted(run_id=RUN_ID, agent_id=a, layer=1, turn=1, at=at(1), title=t) for a, _, t in agents
    ]
    return script


async def test_a_layer_of_100_agents_shows_what_fits_selected_and_most_active_first(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    fake = FakeRun(many_agents_script(100), run_dir=tmp_path / RUN_ID)
    app = make_app(control_factory=_returning(fake))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert len(screen.feeds) == 100
        shown = screen.shown_panes()
        assert 1 < len(shown) == screen.pane_slots() < 100
        assert list(screen.query(AgentPane)) == shown  # widgets for what fits, not one per agent
        screen.stream_text("agent-077", "news ")
        screen.rotate_panes()
        await pilot.pause()
        assert screen.pane("agent-077") is not None
        await pilot.press("end")  # the table scrolls to its last row
        await until(pilot, lambda: screen.pane("agent-099") is not None, "the last agent's pane")
        assert screen.table.selected_agent == "agent-099"
        assert screen.pane("agent-077") is not None  # active: it keeps its pane
        assert list(screen.query(AgentPane)) == shown  # the same widgets, rebound: no layout
        assert all(pane.region.height >= MainScreen.MIN_PANE_HEIGHT for pane in screen.shown_panes())


def _returning(fake: FakeRun) -> Callable[[], Awaitable[FakeRun]]:
    async def factory() -> FakeRun:
        return fake

    return factory


async def test_after_any_resize_the_panes_are_as_many_as_fit_with_the_selected_agent_among_them(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    fake = FakeRun(many_agents_script(30), run_dir=tmp_path / RUN_ID)
    app = make_app(control_factory=_returning(fake))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.table.select_agent("agent-017")
        for size in ((160, 48), (120, 36), (80, 24), (200, 60)):
            await pilot.resize_terminal(*size)

            def fitted() -> bool:
                shown = screen.shown_panes()
                mounted = list(screen.query(AgentPane))
                return (
                    mounted == shown
                    and len(shown) == min(screen.pane_slots(), 30)
                    # laid out too: the regions of panes just mounted come with the next layout
                    and all(pane.region.height >= MainScreen.MIN_PANE_HEIGHT for pane in shown)
                )

            await until(pilot, fitted, f"the panes for {size}, each at least its minimum height")
            assert screen.pane("agent-017") is not None


async def test_text_sent_to_an_agent_without_a_pane_is_wrapped_when_it_gets_one(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    fake = FakeRun(many_agents_script(30), run_dir=tmp_path / RUN_ID)
    app = make_app(control_factory=_returning(fake))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        hidden = next(agent for agent in screen.feeds if screen.pane(agent) is None)
        screen.stream_text(hidden, "Sodium-ion tender prices fell again this quarter. " * 12)
        await settled(pilot)
        assert screen.pane(hidden) is None
        screen.table.select_agent(hidden)
        await until(pilot, lambda: screen.pane(hidden) is not None, "its pane")
        pane = screen.pane(hidden)
        assert pane is not None
        await pilot.pause()
        width = pane.view.size.width
        shown = [pane.view.render_line(y).text.rstrip() for y in range(pane.view.size.height)]
        assert all(len(line) <= width for line in shown) and any("quarter." in line for line in shown)
        assert all(len(row) < width for row in pane.view.lines)
