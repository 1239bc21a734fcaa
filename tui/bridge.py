"""Core events in, Textual messages out: the only place the app listens to a run.

``EventBus.listen`` calls :meth:`EventBridge.on_event` inline in the publisher's task, so it does
no I/O and never waits: it folds the event into the :class:`RunModel` and posts messages.

The stream itself (text fragments, pane notes, ends of turns: thousands a second with many agents)
can skip the message queue: given a :class:`StreamSink`, the bridge hands each fragment to it
directly, in order, and posts messages only for what changes state (rows, budget, header, log).
"""

from __future__ import annotations

from typing import Protocol

from textual.message import Message
from textual.message_pump import MessagePump

from core import events as ev
from core.events import EventBus
from core.view import RunView
from tui import messages as msg
from tui.format import count


class StreamSink(Protocol):
    """Where an agent's stream goes when it does not go through the message queue."""

    def stream_text(self, agent_id: str, text: str) -> None: ...

    def stream_note(self, agent_id: str, text: str) -> None: ...

    def stream_turn_ended(self, agent_id: str, continues: bool) -> None: ...


class EventBridge:
    def __init__(
        self, target: MessagePump, view: RunView | None = None, *, sink: StreamSink | None = None
    ) -> None:
        self.target = target
        self.view = view or RunView()
        self.sink = sink

    def attach(self, bus: EventBus) -> None:
        bus.listen(self.on_event)

    def post(self, message: Message) -> None:
        self.target.post_message(message)

    def on_event(self, event: ev.Event) -> None:
        sink = self.sink
        if sink is not None and isinstance(event, ev.TextStreamed):  # the hot path: nothing else to do
            if event.agent_id:
                sink.stream_text(event.agent_id, event.text)
            return
        for message in self.translate(event):
            if sink is None:
                self.post(message)
            elif isinstance(message, msg.AgentNoted):
                sink.stream_note(message.agent_id, message.text)
            elif isinstance(message, msg.AgentTurnEnded):
                sink.stream_turn_ended(message.agent_id, message.continues)
            else:
                self.post(message)

    def translate(self, event: ev.Event) -> list[Message]:
        out: list[Message] = []
        change = self.view.apply(event)
        if change.run is not None:
            out.append(msg.RunInfoChanged(change.run))
        if change.all_rows:
            out.append(msg.AgentsListed(tuple(self.view.agents.values())))
        else:
            out.extend(msg.AgentRowChanged(row) for row in change.rows)
        if change.incident is not None:
            out.append(msg.IncidentLogged(change.incident))
        note = _pane_note(event)
        if note is not None:
            out.append(note)
        if isinstance(event, ev.TextStreamed) and event.agent_id:
            out.append(msg.AgentTextStreamed(event.agent_id, event.text))
        elif isinstance(event, ev.TurnCompleted) and event.agent_id:
            continues = event.stop_reason in ("pause_turn", "max_tokens")
            out.append(msg.AgentTurnEnded(event.agent_id, continues=continues))
        if change.budget is not None:
            out.append(msg.BudgetChanged(change.budget))
        if isinstance(event, ev.LayerFinished):
            out.append(msg.LayerFinished(event.layer or 0))
        return out


def _pane_note(event: ev.Event) -> msg.AgentNoted | None:
    agent = event.agent_id
    if agent is None:
        return None
    if isinstance(event, ev.SearchIssued):
        return msg.AgentNoted(agent, "search", f'🔍 "{event.query}"')
    if isinstance(event, ev.SearchResultsReceived):
        if event.error_code:
            return msg.AgentNoted(agent, "error", f"   → search failed ({event.error_code})")
        domains = ", ".join(event.domains[:3]) + (" …" if len(event.domains) > 3 else "")
        plural = "result" if event.count == 1 else "results"
        return msg.AgentNoted(
            agent, "results", f"   → {event.count} {plural}" + (f" ({domains})" if domains else "")
        )
    if isinstance(event, ev.AttemptAbandoned):
        return msg.AgentNoted(
            agent, "abandoned", f"⟲ attempt abandoned ({event.chars} chars discarded); retrying"
        )
    if isinstance(event, ev.AgentPausing):
        return msg.AgentNoted(agent, "status", "‖ pausing… the turn in flight finishes first")
    if isinstance(event, ev.AgentPaused):
        return msg.AgentNoted(agent, "status", "‖ paused")
    if isinstance(event, ev.AgentResumed):
        return msg.AgentNoted(agent, "status", "▶ resumed")
    if isinstance(event, ev.AgentKilled):
        return msg.AgentNoted(
            agent, "error", "☠ killed" + (" (partial report kept)" if event.report_path else "")
        )
    if isinstance(event, ev.AgentFailed):
        return msg.AgentNoted(agent, "error", f"✗ failed: {event.error}")
    if isinstance(event, ev.AgentFinished):
        return msg.AgentNoted(agent, "done", f"✓ {event.status.replace('_', ' ')}: report written")
    if isinstance(event, ev.ContextCompacted):
        return msg.AgentNoted(
            agent,
            "status",
            f"⇣ context compacted: {count(event.tokens_before)} → {count(event.tokens_after)} tokens",
        )
    if isinstance(event, ev.RetryScheduled):
        code = event.status_code or event.error_kind
        return msg.AgentNoted(agent, "abandoned", f"↻ {code}: retry {event.attempt} in {event.wait_s:.1f} s")
    return None
