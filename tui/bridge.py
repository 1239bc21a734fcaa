"""Core events in, Textual messages out: the only place the app listens to a run.

``EventBus.listen`` calls :meth:`EventBridge.on_event` inline in the publisher's task, so it does
no I/O and never waits: it folds the event into the :class:`RunModel` and posts messages.

The stream itself (text fragments, pane notes, ends of turns: thousands a second with many agents)
can skip the message queue: given a :class:`StreamSink`, the bridge hands each fragment to it
directly, in order, and posts messages only for what changes state (rows, budget, header, log).
"""

from __future__ import annotations

from typing import Protocol, assert_never

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
        out.extend(msg.IncidentLogged(incident) for incident in change.recalled)
        if change.incident is not None:
            out.append(msg.IncidentLogged(change.incident))
        out.extend(_pane_messages(event))
        if change.budget is not None:
            out.append(msg.BudgetChanged(change.budget))
        return out


def _pane_messages(event: ev.Event) -> list[Message]:
    """What ``event`` adds to its agent's pane (or the layer's end), besides rows and incidents."""
    agent = event.agent_id
    match event:
        case ev.TextStreamed():
            return [msg.AgentTextStreamed(agent, event.text)] if agent else []
        case ev.TurnCompleted():
            continues = event.stop_reason in ("pause_turn", "max_tokens")
            return [msg.AgentTurnEnded(agent, continues=continues)] if agent else []
        case ev.LayerFinished():
            return [msg.LayerFinished(event.layer or 0)]
        case ev.SearchIssued():
            text = f'🔍 "{event.query}"'
            kind = "search"
        case ev.SearchResultsReceived():
            if event.error_code:
                kind, text = "error", f"   → search failed ({event.error_code})"
            else:
                domains = ", ".join(event.domains[:3]) + (" …" if len(event.domains) > 3 else "")
                plural = "result" if event.count == 1 else "results"
                kind = "results"
                text = f"   → {event.count} {plural}" + (f" ({domains})" if domains else "")
        case ev.AttemptAbandoned():
            kind, text = "abandoned", f"⟲ attempt abandoned ({event.chars} chars discarded); retrying"
        case ev.AgentBatched():
            kind, text = "status", f"⧗ in batch {event.batch_id}: the answer arrives when the batch ends"
        case ev.AgentPausing():
            kind, text = "status", "‖ pausing… the turn in flight finishes first"
        case ev.AgentPaused():
            kind, text = "status", "‖ paused"
        case ev.AgentResumed():
            kind, text = "status", "▶ resumed"
        case ev.AgentKilled():
            kind, text = "error", "☠ killed" + (" (partial report kept)" if event.report_path else "")
        case ev.AgentFailed():
            kind, text = "error", f"✗ failed: {event.error}"
        case ev.AgentSkipped():
            kind, text = "error", f"⤼ skipped: {event.reason}"
        case ev.AgentFinished():
            kind, text = "done", f"✓ {event.status.value.replace('_', ' ')}: report written"
        case ev.ContextCompacted():
            before, after = count(event.tokens_before), count(event.tokens_after)
            kind, text = "status", f"⇣ context compacted: {before} → {after} tokens"
        case ev.RetryScheduled():
            code = event.status_code or event.error_kind
            kind, text = "abandoned", f"↻ {code}: retry {event.attempt} in {event.wait_s:.1f} s"
        case (
            ev.RunStarted()
            | ev.LayerStarted()
            | ev.RunFinished()
            | ev.AgentStarted()
            | ev.AttemptCharged()
            | ev.CitationReceived()
            | ev.AgentInterrupted()
            | ev.AgentBudgetWaitStarted()
            | ev.AgentBudgetWaitEnded()
            | ev.StopReasonUnhandled()
            | ev.ApiErrorRaised()
            | ev.BudgetUpdated()
            | ev.BudgetCapReached()
            | ev.CheckpointSaved()
            | ev.DiskErrorRaised()
            | ev.SubscriberFailed()
            | ev.IncidentsRecalled()
            | ev.RunStopping()
            | ev.BatchSubmitted()
            | ev.BatchProgress()
            | ev.BatchEnded()
        ):
            return []  # (shown through the rows, the header, the budget or the incident log)
        case _:
            assert_never(event)
    return [msg.AgentNoted(agent, kind, text)] if agent is not None else []
