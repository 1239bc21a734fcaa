"""The bridge turns events into messages: whole values for rows and budget, fragments for text."""

from __future__ import annotations

from textual.message import Message
from textual.message_pump import MessagePump

from core import events as ev
from core.events import EventBus
from core.view import AgentRow
from tests.tui.fakes import RUN_ID, budget, sodium_script
from tui import messages as msg
from tui.bridge import EventBridge


class Collector(MessagePump):
    def __init__(self) -> None:
        super().__init__()
        self.posted: list[Message] = []

    def post_message(self, message: Message) -> bool:
        self.posted.append(message)
        return True


def test_bus_events_arrive_as_messages_in_order() -> None:
    target = Collector()
    bus = EventBus()
    EventBridge(target).attach(bus)
    for event in sodium_script():
        bus.publish(event)
    kinds = [type(m) for m in target.posted]
    assert kinds[0] is msg.RunInfoChanged and msg.AgentsListed in kinds
    texts = "".join(
        m.text for m in target.posted if isinstance(m, msg.AgentTextStreamed) and m.agent_id == "market"
    )
    assert texts.startswith("Stationary storage tenders")
    notes = [m.text for m in target.posted if isinstance(m, msg.AgentNoted) and m.agent_id == "market"]
    assert notes[:2] == [
        '🔍 "sodium-ion grid storage tenders 2026"',
        "   → 10 results (energy-storage.example, grid-news.example, tenders.example …)",
    ]


def test_latest_value_messages_replace_only_their_own_kind() -> None:
    row = AgentRow(agent_id="a", layer=1)
    assert msg.AgentRowChanged(row).can_replace(msg.AgentRowChanged(row))
    assert not msg.AgentRowChanged(row).can_replace(msg.AgentRowChanged(AgentRow(agent_id="b", layer=1)))
    b1, b2 = budget(1, 1, 0, 1, 1, 0.1), budget(2, 2, 0, 2, 2, 0.2)
    assert msg.BudgetChanged(b1).can_replace(msg.BudgetChanged(b2))
    text = msg.AgentTextStreamed("a", "x")
    assert not text.can_replace(msg.AgentTextStreamed("a", "y"))


def test_search_errors_and_abandoned_attempts_become_notes() -> None:
    bridge = EventBridge(Collector())
    out = bridge.translate(
        ev.SearchResultsReceived(run_id=RUN_ID, agent_id="a", error_code="max_uses_exceeded")
    )
    assert any(isinstance(m, msg.AgentNoted) and "search failed (max_uses_exceeded)" in m.text for m in out)
    out = bridge.translate(ev.AttemptAbandoned(run_id=RUN_ID, agent_id="a", chars=40))
    assert any(isinstance(m, msg.AgentNoted) and m.kind == "abandoned" for m in out)


class Sink:
    def __init__(self) -> None:
        self.stream: list[tuple[str, str, str | bool]] = []

    def stream_text(self, agent_id: str, text: str) -> None:
        self.stream.append(("text", agent_id, text))

    def stream_note(self, agent_id: str, text: str) -> None:
        self.stream.append(("note", agent_id, text))

    def stream_turn_ended(self, agent_id: str, continues: bool) -> None:
        self.stream.append(("end", agent_id, continues))


def test_with_a_sink_the_stream_skips_the_message_queue_and_keeps_its_order() -> None:
    target, sink = Collector(), Sink()
    bus = EventBus()
    EventBridge(target, sink=sink).attach(bus)
    script = sodium_script()
    for event in script:
        bus.publish(event)
    stream_kinds = msg.AgentTextStreamed | msg.AgentNoted | msg.AgentTurnEnded
    assert not any(isinstance(m, stream_kinds) for m in target.posted)
    assert any(isinstance(m, msg.AgentRowChanged) for m in target.posted)
    assert any(isinstance(m, msg.BudgetChanged) for m in target.posted)
    # the same stream, in the same order, as the messages a bridge without a sink posts
    plain = Collector()
    bus = EventBus()
    EventBridge(plain).attach(bus)
    for event in script:
        bus.publish(event)
    expected = [
        ("text", m.agent_id, m.text)
        if isinstance(m, msg.AgentTextStreamed)
        else ("note", m.agent_id, m.text)
        if isinstance(m, msg.AgentNoted)
        else ("end", m.agent_id, m.continues)
        for m in plain.posted
        if isinstance(m, stream_kinds)
    ]
    assert sink.stream == expected
    assert ("note", "market", '🔍 "sodium-ion grid storage tenders 2026"') in sink.stream
