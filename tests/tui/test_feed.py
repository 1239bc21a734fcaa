"""A feed holds an agent's stream as data: bounded lines, whole words, notes on their own lines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from textual.app import App

from core.control import AgentStatus
from core.view import AgentRow
from tests.waits import until
from tui.coalesce import Coalescer
from tui.feed import AgentFeed, LineBuffer


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.text(alphabet="ab \n", max_size=50), max_size=80),
    max_lines=st.integers(min_value=1, max_value=20),
    max_chars=st.integers(min_value=1, max_value=300),
)
def test_the_buffer_keeps_the_newest_whole_lines_within_its_bounds(
    pieces: list[str], max_lines: int, max_chars: int
) -> None:
    buffer = LineBuffer(max_lines, max_chars)
    for piece in pieces:
        buffer.write(piece)
    everything = "".join(pieces).split("\n")
    assert len(buffer.lines) <= max_lines + LineBuffer.SLACK
    assert len(buffer.text) <= max(max_chars * 5 // 4, len(everything[-1])) + 1
    assert buffer.lines == (everything[buffer.dropped :] if any(pieces) else [])  # the tail, as written
    assert buffer.version == sum(1 for piece in pieces if piece)


class FeedApp(App[None]):
    pass


async def test_a_hidden_agents_feed_keeps_its_text_whole_without_a_pane() -> None:
    app = FeedApp()
    async with app.run_test() as pilot:
        flusher = Coalescer(app, 0.05)
        feed = AgentFeed(AgentRow(agent_id="policy", layer=1, status=AgentStatus.RUNNING), flusher)
        feed.append_text("Tariffs rose in 20")
        await until(pilot, lambda: not flusher.armed, "the flush")
        assert feed.text == "Tariffs rose in "  # the half word waits
        feed.append_text("24.")
        feed.add_note('🔍 "tariff schedule"')
        feed.end_turn(paragraph=True)
        feed.append_text("Next")
        feed.end_turn()
        await until(pilot, lambda: not flusher.armed, "the flush")
        assert feed.text == 'Tariffs rose in 2024.\n🔍 "tariff schedule"\n\n\nNext'
        assert feed.watcher is None
