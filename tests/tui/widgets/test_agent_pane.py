"""An agent pane shows its feed: coalesced, bounded in memory, re-wrapped when resized or rebound."""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from core.control import AgentStatus
from core.view import AgentRow
from tests.waits import until
from tui.coalesce import Coalescer
from tui.feed import AgentFeed
from tui.widgets.agent_pane import AgentPane


def running(agent_id: str) -> AgentRow:
    return AgentRow(agent_id=agent_id, layer=1, status=AgentStatus.RUNNING, turn=2)


class PaneApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.flusher = Coalescer(self, 0.1)

    def compose(self) -> ComposeResult:
        yield AgentPane(AgentFeed(running("market"), self.flusher))


async def flushed(pilot: Pilot[None], app: PaneApp) -> None:
    """Wait until what was streamed has reached the pane (the coalesced flush ran and was drawn)."""
    await pilot.pause()
    await until(pilot, lambda: not app.flusher.armed, "the flush")
    await pilot.pause()


def feed(pane: AgentPane) -> AgentFeed:
    assert pane.feed is not None
    return pane.feed


def lines(pane: AgentPane) -> list[str]:
    return [str(line) for line in pane.view.lines]


async def test_a_burst_of_fragments_is_one_repaint_with_every_word() -> None:
    app = PaneApp()
    async with app.run_test(size=(60, 20)) as pilot:
        pane = app.query_one(AgentPane)
        for i in range(500):
            feed(pane).append_text(f"w{i} ")
        await flushed(pilot, app)
        assert feed(pane).flushes == 1
        assert pane.text.split() == [f"w{i}" for i in range(500)]
        assert all(cell_len(line) <= pane.content_region.width for line in lines(pane))


async def test_a_half_word_waits_for_the_rest_or_the_end_of_the_turn() -> None:
    app = PaneApp()
    async with app.run_test(size=(60, 20)) as pilot:
        pane = app.query_one(AgentPane)
        feed(pane).append_text("Sodium-ion cells are che")
        await flushed(pilot, app)
        assert pane.text == "Sodium-ion cells are "
        feed(pane).append_text("aper")
        feed(pane).end_turn()
        await flushed(pilot, app)
        assert pane.text == "Sodium-ion cells are cheaper"


async def test_notes_start_on_their_own_line() -> None:
    app = PaneApp()
    async with app.run_test(size=(60, 20)) as pilot:
        pane = app.query_one(AgentPane)
        feed(pane).append_text("Some text ")
        feed(pane).add_note('🔍 "query"')
        feed(pane).append_text("more ")
        await flushed(pilot, app)
        assert pane.text == 'Some text \n🔍 "query"\nmore '


async def test_memory_is_bounded_however_long_the_stream() -> None:
    app = PaneApp()
    async with app.run_test(size=(60, 20)) as pilot:
        pane = app.query_one(AgentPane)
        for i in range(3000):
            feed(pane).append_text(f"line {i} of a very long transcript that never ends\n")
        await flushed(pilot, app)
        assert len(pane.text) <= AgentFeed.TAIL_CHARS
        assert len(feed(pane).buffer.lines) <= AgentFeed.MAX_LINES
        assert lines(pane)[-2].startswith("line 2999")


async def test_resizing_rewraps_to_the_new_width() -> None:
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(AgentPane)
        feed(pane).append_text("word " * 60)
        feed(pane).end_turn()
        await flushed(pilot, app)
        wide = len(lines(pane))
        await pilot.resize_terminal(40, 20)
        await until(pilot, lambda: len(lines(pane)) > wide, "the pane re-wrapped at 40 columns")
        assert all(cell_len(line) <= 40 for line in lines(pane))


async def test_the_border_shows_turn_searches_cost_and_pause_state() -> None:
    app = PaneApp()
    async with app.run_test(size=(80, 20)) as pilot:
        pane = app.query_one(AgentPane)
        feed(pane).show_row(
            AgentRow(
                agent_id="market", layer=1, status=AgentStatus.PAUSED, turn=4, searches=12, cost_usd=1.84
            )
        )
        await pilot.pause()
        assert pane.border_title == "market ▸ turn 4 ─ 12 searches ─ $1.84"
        assert pane.border_subtitle == "paused"
        assert pane.has_class("-paused")


async def test_scrolled_back_the_border_says_how_much_is_below_and_end_follows_again() -> None:
    app = PaneApp()
    async with app.run_test(size=(60, 12)) as pilot:
        pane = app.query_one(AgentPane)
        for i in range(40):
            feed(pane).append_text(f"line {i}\n")
        await flushed(pilot, app)
        pane.view.focus()
        await pilot.press("pageup")
        await pilot.pause()
        assert pane.border_subtitle.startswith("↓ ")
        assert pane.border_subtitle.endswith(" more lines (end: follow)")
        await pilot.press("end")
        await pilot.pause()
        assert pane.border_subtitle == ""
        assert lines(pane)[-2] == "line 39"


async def test_a_pane_bound_to_another_feed_shows_it_wrapped_and_leaves_the_first_alone() -> None:
    app = PaneApp()
    async with app.run_test(size=(40, 12)) as pilot:
        pane = app.query_one(AgentPane)
        market = feed(pane)
        policy = AgentFeed(running("policy"), app.flusher)
        policy.append_text("tariff " * 30)  # streamed while no pane showed it
        policy.end_turn()
        await flushed(pilot, app)
        pane.bind(policy)
        await pilot.pause()
        assert pane.agent_id == "policy" and pane.border_title.startswith("policy ▸ turn 2")
        assert policy.watcher is pane and market.watcher is None
        assert " ".join(lines(pane)).split() == ["tariff"] * 30
        assert all(cell_len(line) < pane.content_region.width for line in lines(pane))
        shown = list(pane.view.lines)
        market.append_text("this goes to market only ")
        market.end_turn()
        await flushed(pilot, app)
        assert "market only" in market.text and list(pane.view.lines) == shown
