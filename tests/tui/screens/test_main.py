"""The main screen under a stream: text goes straight to panes, flushed together; counters are throttled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from core import events as ev
from core.control import AgentStatus
from core.view import AgentRow
from tests.tui.conftest import settle
from tests.tui.fakes import RUN_ID, FakeRun, at
from tui import messages as msg
from tui.app import ResearchApp
from tui.screens.main import MainScreen


async def test_text_that_arrives_before_the_agents_pane_is_shown_in_it(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert "cross-tech" not in screen.panes  # layer 2: pending
        screen.stream_note("cross-tech", '🔍 "cross-chemistry cost curves"')
        screen.stream_text("cross-tech", "Costs converge ")
        screen.post_message(
            msg.AgentRowChanged(AgentRow(agent_id="cross-tech", layer=2, status=AgentStatus.RUNNING))
        )
        screen.stream_text("cross-tech", "by 2028.")
        screen.stream_turn_ended("cross-tech", False)
        await pilot.pause(0.3)
        assert (
            screen.panes["cross-tech"].text == '🔍 "cross-chemistry cost curves"\nCosts converge by 2028.\n\n'
        )


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
        await pilot.pause(0.05)
        assert screen.table.rows_by_id["market"].cost_usd == 2.0  # after a quiet spell: at once
        for cost in (2.1, 2.2):  # within the quarter second that follows: held, latest value wins
            screen.post_message(msg.AgentRowChanged(replace(market, turn=5, cost_usd=cost)))
        await pilot.pause()
        assert screen.table.rows_by_id["market"].cost_usd == 2.0
        await pilot.pause(0.3)
        assert screen.table.rows_by_id["market"].cost_usd == 2.2
        assert screen.panes["market"].border_title == "market ▸ turn 5 ─ 12 searches ─ $2.20"
        screen.post_message(
            msg.AgentRowChanged(replace(market, turn=5, cost_usd=2.2, status=AgentStatus.PAUSED))
        )
        await pilot.pause()
        assert screen.table.rows_by_id["market"].status == AgentStatus.PAUSED
        assert screen.panes["market"].border_subtitle == "paused"


async def test_streaming_panes_flush_together_and_idle_panes_are_left_alone(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        panes = screen.panes
        before = {agent: pane.flushes for agent, pane in panes.items()}
        batches = screen._pane_flusher.flushes
        for _ in range(50):
            screen.stream_text("market", "more tenders ")
            screen.stream_text("chemistry", "more cathodes ")
        await pilot.pause(0.3)
        after = {agent: pane.flushes for agent, pane in panes.items()}
        assert screen._pane_flusher.flushes == batches + 1
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
        pane = screen.panes["market"]
        await pilot.press("f")
        await pilot.pause(0.2)
        wide = pane.content_region.width
        for n in range(40):
            screen.stream_text("market", f"streamed-while-wide word{n} ")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await pilot.pause(0.3)
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
        assert screen.panes["market"].display and not screen.panes["chemistry"].display
        await pilot.press("down")
        await pilot.pause(MainScreen.SWAP_DELAY + 0.1)
        assert [pane.agent_id for pane in screen.shown_panes()] == ["chemistry"]
        assert screen.panes["chemistry"].display and not screen.panes["market"].display
        assert "hidden" in str(screen.query_one("#agents").border_subtitle)


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
        assert len(screen.panes) == 100
        shown = screen.shown_panes()
        assert 1 <= len(shown) <= screen.pane_slots() < 100
        assert sum(pane.display for pane in screen.panes.values()) == len(shown)
        screen.stream_text("agent-077", "news ")
        screen.rotate_panes()
        await pilot.pause()
        assert screen.panes["agent-077"].display
        await pilot.press("end")  # the table scrolls to its last row
        await pilot.pause(MainScreen.SWAP_DELAY + 0.1)
        assert screen.table.selected_agent == "agent-099"
        assert screen.panes["agent-099"].display
        assert all(pane.region.height >= MainScreen.MIN_PANE_HEIGHT for pane in screen.shown_panes())


def _returning(fake: FakeRun) -> Callable[[], Awaitable[FakeRun]]:
    async def factory() -> FakeRun:
        return fake

    return factory


async def test_panes_chosen_before_the_pane_area_had_a_size_are_chosen_again(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        for pane in screen.panes.values():  # as a layout made at size 0 left them
            pane.display = pane.agent_id == "market"
        screen.rotate_panes()
        await pilot.pause()
        assert len(screen.panes) <= screen.pane_slots()
        assert all(pane.display for pane in screen.panes.values())


async def test_a_hidden_pane_wraps_what_it_was_sent_when_it_is_shown(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    fake = FakeRun(many_agents_script(30), run_dir=tmp_path / RUN_ID)
    app = make_app(control_factory=_returning(fake))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        hidden = next(pane for pane in screen.panes.values() if not pane.display)
        screen.stream_text(hidden.agent_id, "Sodium-ion tender prices fell again this quarter. " * 12)
        await pilot.pause(0.3)
        assert hidden.view._wrap_width == 0  # no wrapping work for a pane nobody sees
        screen.table.select_agent(hidden.agent_id)
        await pilot.pause(MainScreen.SWAP_DELAY + 0.2)
        assert hidden.display
        width = hidden.view.size.width
        shown = [hidden.view.render_line(y).text.rstrip() for y in range(hidden.view.size.height)]
        assert all(len(line) <= width for line in shown) and any("quarter." in line for line in shown)
        assert all(len(row) < width for row in hidden.view.lines)
