"""The run's trace, built from its events: run → layer → agent → turn → attempt.

Events arrive after the fact, so spans are given their start and end times from the events'
``at`` stamps. A turn and its attempts are kept as plain records until the turn completes (or its
agent ends) and are then emitted together: what an attempt cost is only known when it ended.
Attributes follow the OpenTelemetry GenAI semantic conventions where they apply (``gen_ai.*``) and
the product's own names otherwise (``research_orchestrator.*``). A resumed run's span is a child of
the first run's span (the same trace), and links to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode, TraceFlags, Tracer
from opentelemetry.util.types import AttributeValue

from core import events as ev
from core.status import AgentStatus
from core.usage import TokenUsage

PREFIX = "research_orchestrator"
RUN_ID = f"{PREFIX}.run.id"
AGENT_ID = f"{PREFIX}.agent.id"
LAYER = f"{PREFIX}.layer"
TURN = f"{PREFIX}.turn"
ATTEMPT = f"{PREFIX}.attempt"
REQUEST_ID = f"{PREFIX}.request_id"
BILLED_USD = f"{PREFIX}.billed_usd"
UNCONFIRMED_USD = f"{PREFIX}.unconfirmed_usd"
SEARCHES = f"{PREFIX}.searches"
COMPLETED = f"{PREFIX}.turn.completed"
PROVIDER = "anthropic"
_ENDED = (ev.AgentFinished, ev.AgentFailed, ev.AgentKilled, ev.AgentInterrupted)


def _ns(at: float) -> int:
    return int(at * 1e9)


@dataclass(slots=True)
class Attempt:
    """One request of a call: when it ran, what it was charged, how it ended."""

    start: float
    number: int
    end: float | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    billed_usd: float = 0.0
    unconfirmed_usd: float = 0.0
    request_id: str | None = None
    error_kind: str | None = None
    status_code: int | None = None
    message: str = ""
    outcome: str | None = None


@dataclass(slots=True)
class Call:
    """A turn (or a compaction) in progress: its attempts so far and its retries."""

    start: float
    attempts: list[Attempt] = field(default_factory=list)
    retries: list[ev.RetryScheduled] = field(default_factory=list)

    def current(self, at: float) -> Attempt:
        """The attempt in flight: the call's first starts with the call (no event marks a send)."""
        if not self.attempts or self.attempts[-1].end is not None:
            start = at if self.attempts else min(self.start, at)
            self.attempts.append(Attempt(start=start, number=len(self.attempts) + 1))
        return self.attempts[-1]

    def drop_unsent(self) -> None:
        """Forget a retry that was scheduled but never sent (its agent ended while it waited)."""
        last = self.attempts[-1] if self.attempts else None
        if last is not None and last.end is None and last.outcome is None and last.request_id is None:
            self.attempts.pop()


@dataclass(slots=True)
class AgentTrace:
    span: Span
    model: str
    max_tokens: int | None
    call: Call
    waited_since: float | None = None


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What the config says of an agent that its events do not carry."""

    model: str
    max_tokens: int


def usage_attributes(usage: TokenUsage) -> dict[str, AttributeValue]:
    """GenAI usage: input counts every input token (uncached, cache writes, cache reads). Cache and
    search counts are left out when zero (an absent count is zero): every attribute is exported."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.usage.input_tokens": usage.total_input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    for key, count in (
        ("gen_ai.usage.cache_read.input_tokens", usage.cache_read_input_tokens),
        ("gen_ai.usage.cache_creation.input_tokens", usage.cache_creation_input_tokens),
        (SEARCHES, usage.web_search_requests),
    ):
        if count:
            attributes[key] = count
    return attributes


class TraceBuilder:
    """Turns the run's events into spans on ``tracer``; ``parent`` is the first run's span on a resume."""

    def __init__(
        self, tracer: Tracer, agents: Mapping[str, AgentFacts], parent: SpanContext | None = None
    ) -> None:
        self._tracer = tracer
        self._facts = agents
        self._parent = parent
        self.run_span: Span | None = None
        self._layers: dict[int, Span] = {}
        self._agents: dict[str, AgentTrace] = {}
        self._batches: dict[str, Span] = {}
        self._run_id = ""

    # --- spans above the agents ---------------------------------------------------------------

    def run_started(self, event: ev.RunStarted) -> Span:
        self._run_id = event.run_id
        context = None
        links: list[Link] = []
        if self._parent is not None:
            context = trace.set_span_in_context(trace.NonRecordingSpan(self._parent))
            links.append(Link(self._parent, {f"{PREFIX}.link": "resumed_from"}))
        self.run_span = self._tracer.start_span(
            f"run {event.program}",
            context=context,
            links=links,
            start_time=_ns(event.at),
            attributes={
                RUN_ID: event.run_id,
                f"{PREFIX}.program": event.program,
                f"{PREFIX}.resumed": event.resumed,
                f"{PREFIX}.simulated": event.simulated,
                "gen_ai.provider.name": PROVIDER,
            },
        )
        return self.run_span

    def layer_started(self, event: ev.LayerStarted) -> None:
        if event.layer is None:
            return
        self._layers[event.layer] = self._tracer.start_span(
            f"layer {event.layer}",
            context=self._context(self.run_span),
            start_time=_ns(event.at),
            attributes={RUN_ID: event.run_id, LAYER: event.layer, f"{PREFIX}.agents": len(event.agent_ids)},
        )

    def layer_finished(self, event: ev.LayerFinished) -> None:
        span = self._layers.pop(event.layer, None) if event.layer is not None else None
        if span is None:
            return
        failed = sorted(a for a, s in event.statuses.items() if s is AgentStatus.FAILED)
        if failed:
            span.set_status(Status(StatusCode.ERROR, "failed: " + ", ".join(failed)))
        span.end(_ns(event.at))

    # --- a batch layer's batches (core/engine/batch_round.py): one span each, under the layer -------

    def batch_submitted(self, event: ev.BatchSubmitted) -> None:
        parent = self._layers.get(event.layer) if event.layer is not None else None
        self._batches[event.batch_id] = self._tracer.start_span(
            f"batch {event.batch_id}",
            context=self._context(parent or self.run_span),
            start_time=_ns(event.at),
            attributes={
                RUN_ID: event.run_id,
                LAYER: event.layer if event.layer is not None else 0,
                f"{PREFIX}.batch.id": event.batch_id,
                f"{PREFIX}.batch.requests": event.requests,
            },
        )

    def batch_progress(self, event: ev.BatchProgress) -> None:
        span = self._batches.get(event.batch_id)
        if span is not None:
            attributes: dict[str, AttributeValue] = {f"{PREFIX}.batch.status": event.processing_status}
            attributes.update({f"{PREFIX}.batch.{k}": v for k, v in event.request_counts.items()})
            span.add_event("batch_progress", attributes, timestamp=_ns(event.at))

    def batch_ended(self, event: ev.BatchEnded) -> None:
        span = self._batches.pop(event.batch_id, None)
        if span is None:
            return
        for name, count in event.request_counts.items():
            span.set_attribute(f"{PREFIX}.batch.{name}", count)
        if event.request_counts.get("errored") or event.request_counts.get("expired"):
            span.set_status(Status(StatusCode.ERROR, "some requests errored or expired"))
        span.end(_ns(event.at))

    def run_finished(self, event: ev.RunFinished) -> None:
        for agent_id in list(self._agents):  # nothing is left open (an interrupted run)
            self._end_agent(agent_id, event.at, None)
        for batch in self._batches.values():  # left running server-side by a stop: a resume collects it
            batch.end(_ns(event.at))
        self._batches.clear()
        for layer in list(self._layers.values()):
            layer.end(_ns(event.at))
        self._layers.clear()
        span = self.run_span
        if span is None:
            return
        span.set_attribute(f"{PREFIX}.status", event.status.value)
        span.set_attribute(f"{PREFIX}.cost_usd", event.cost_usd)
        if event.status.value == "failed":
            span.set_status(Status(StatusCode.ERROR, event.message or "failed"))
        span.end(_ns(event.at))
        self.run_span = None

    # --- an agent -----------------------------------------------------------------------------

    def agent_started(self, event: ev.AgentStarted) -> None:
        agent_id = event.agent_id or ""
        facts = self._facts.get(agent_id)
        parent = self._layers.get(event.layer) if event.layer is not None else None
        span = self._tracer.start_span(
            f"invoke_agent {agent_id}",
            context=self._context(parent or self.run_span),
            start_time=_ns(event.at),
            attributes={
                RUN_ID: event.run_id,
                AGENT_ID: agent_id,
                LAYER: event.layer or 0,
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": PROVIDER,
                "gen_ai.agent.name": agent_id,
                "gen_ai.agent.description": event.title,
                f"{PREFIX}.resumed_from_turn": event.resumed_from_turn,
            },
        )
        self._agents[agent_id] = AgentTrace(
            span,
            facts.model if facts else "",
            facts.max_tokens if facts else None,
            Call(start=event.at),
        )

    def agent_event(self, event: ev.Event) -> None:
        """Every event of an agent below its start: attempts, turns, waits, its end."""
        agent = self._agents.get(event.agent_id or "")
        if agent is None:
            if isinstance(event, ev.AttemptCharged):  # charged at a resume for a dead process's call
                self._orphan_charge(event)
            return
        match event:
            case ev.AttemptCharged():
                attempt = agent.call.current(event.at)
                attempt.usage += event.usage
                if event.billed:
                    attempt.billed_usd += event.cost_usd
                else:
                    attempt.unconfirmed_usd += event.cost_usd
                attempt.outcome = event.outcome or event.basis
                attempt.request_id = event.request_id or attempt.request_id
            case ev.RetryScheduled():
                attempt = agent.call.current(event.at)
                attempt.end = event.at
                attempt.error_kind = event.error_kind
                attempt.status_code = event.status_code
                attempt.message = event.message
                attempt.request_id = event.request_id or attempt.request_id
                agent.call.retries.append(event)
                agent.call.attempts.append(
                    Attempt(start=event.at + event.wait_s, number=len(agent.call.attempts) + 1)
                )
            case ev.TurnCompleted():
                attempt = agent.call.current(event.at)
                attempt.end = event.at
                attempt.usage += event.usage
                attempt.billed_usd += event.cost_usd
                attempt.request_id = event.request_id or attempt.request_id
                self._emit_call(agent, event, f"turn {event.turn}", event.turn, event.at, completed=True)
            case ev.ContextCompacted():
                attempt = agent.call.current(event.at)
                attempt.end = event.at
                attempt.usage += event.usage
                attempt.billed_usd += event.cost_usd
                self._emit_call(agent, event, "compaction", None, event.at, completed=True)
            case ev.AgentBudgetWaitStarted():
                agent.waited_since = event.at
                agent.span.add_event(
                    "budget_wait_started",
                    {f"{PREFIX}.cap": event.cap, "message": event.message},
                    _ns(event.at),
                )
            case ev.AgentBudgetWaitEnded():
                waited = event.at - agent.waited_since if agent.waited_since is not None else 0.0
                agent.waited_since = None
                agent.span.add_event("budget_wait_ended", {f"{PREFIX}.wait_s": waited}, _ns(event.at))
            case ev.AgentPaused() | ev.AgentResumed() | ev.BudgetCapReached() | ev.ApiErrorRaised():
                agent.span.add_event(event.kind, _incident_attributes(event), _ns(event.at))
            case ev.AgentFinished() | ev.AgentFailed() | ev.AgentKilled() | ev.AgentInterrupted():
                self._end_agent(event.agent_id or "", event.at, event)
            case _:
                pass

    # --- emitting -----------------------------------------------------------------------------

    def _emit_call(
        self, agent: AgentTrace, event: ev.Event, name: str, turn: int | None, end: float, *, completed: bool
    ) -> None:
        """The turn's span and its attempts' spans, then a fresh turn from ``end``."""
        call = agent.call
        agent.call = Call(start=end)
        if not call.attempts:
            return
        billed = sum(a.billed_usd for a in call.attempts)
        unconfirmed = sum(a.unconfirmed_usd for a in call.attempts)
        attributes: dict[str, AttributeValue] = {
            AGENT_ID: event.agent_id or "",
            BILLED_USD: billed,
            UNCONFIRMED_USD: unconfirmed,
            COMPLETED: completed,
            f"{PREFIX}.attempts": len(call.attempts),
        }  # the tokens are the attempts' (gen_ai.usage.*): each attribute costs its export
        if turn is not None:
            attributes[TURN] = turn
        if isinstance(event, ev.TurnCompleted):
            attributes["gen_ai.response.finish_reasons"] = [event.stop_reason or ""]
            if event.paused_continuation:
                attributes[f"{PREFIX}.paused_continuation"] = True
        span = self._tracer.start_span(
            name, context=self._context(agent.span), start_time=_ns(call.start), attributes=attributes
        )
        for retry in call.retries:
            span.add_event(
                "retry",
                {
                    f"{PREFIX}.retry.kind": retry.error_kind,
                    f"{PREFIX}.retry.attempt": retry.attempt,
                    f"{PREFIX}.retry.wait_s": retry.wait_s,
                    "http.response.status_code": retry.status_code or 0,
                    REQUEST_ID: retry.request_id or "",
                    "message": retry.message,
                },
                _ns(retry.at),
            )
        model = event.model if isinstance(event, ev.TurnCompleted) and event.model else agent.model
        for attempt in call.attempts:
            self._emit_attempt(agent, span, attempt, model, turn, end, event)
        if not completed:
            span.set_status(Status(StatusCode.ERROR, "the turn did not complete"))
        span.end(_ns(end))

    def _emit_attempt(
        self, agent: AgentTrace, turn_span: Span, attempt: Attempt, model: str, turn: int | None,
        end: float, event: ev.Event,
    ) -> None:  # fmt: skip
        # The run and agent are the parents' attributes: an attempt carries what is its own.
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.request.model": model,
            ATTEMPT: attempt.number,
            BILLED_USD: attempt.billed_usd,
            UNCONFIRMED_USD: attempt.unconfirmed_usd,
            **usage_attributes(attempt.usage),
        }
        if agent.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = agent.max_tokens
        if turn is not None:
            attributes[TURN] = turn
        if attempt.request_id:
            attributes[REQUEST_ID] = attempt.request_id
        if attempt.outcome:
            attributes[f"{PREFIX}.attempt.outcome"] = attempt.outcome
        if attempt.error_kind:
            attributes["error.type"] = attempt.error_kind
        if attempt.status_code is not None:
            attributes["http.response.status_code"] = attempt.status_code
        span = self._tracer.start_span(
            f"chat {model}".strip(),
            context=self._context(turn_span),
            start_time=_ns(min(attempt.start, attempt.end or end)),
            attributes=attributes,
        )
        if attempt.error_kind or attempt.end is None:
            span.set_status(
                Status(StatusCode.ERROR, attempt.message or attempt.error_kind or "did not finish")
            )
        span.end(_ns(attempt.end or end))

    def _end_agent(self, agent_id: str, at: float, event: ev.Event | None) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        agent.call.drop_unsent()
        if agent.call.attempts:  # a turn cut short: its attempts were still paid for
            assert event is None or isinstance(event, _ENDED)
            self._emit_call(
                agent, event or ev.AgentInterrupted(run_id=self._run_id, agent_id=agent_id), "turn", None, at,
                completed=False,
            )  # fmt: skip
        match event:
            case ev.AgentFinished():
                agent.span.set_attribute(f"{PREFIX}.agent.status", event.status.value)
                agent.span.set_attribute(f"{PREFIX}.turns", event.turns)
            case ev.AgentFailed():
                agent.span.set_attribute(f"{PREFIX}.agent.status", "failed")
                agent.span.set_status(Status(StatusCode.ERROR, event.error))
                if event.error_type:
                    agent.span.set_attribute("error.type", event.error_type)
            case ev.AgentKilled():
                agent.span.set_attribute(f"{PREFIX}.agent.status", "killed")
            case _:
                agent.span.set_attribute(f"{PREFIX}.agent.status", "interrupted")
        agent.span.end(_ns(at))

    def _orphan_charge(self, event: ev.AttemptCharged) -> None:
        """A charge with no agent span: the call a previous process had in flight when it died."""
        billed = event.billed
        span = self._tracer.start_span(
            "lost attempt",
            context=self._context(self.run_span),
            start_time=_ns(event.at),
            attributes={
                RUN_ID: event.run_id,
                AGENT_ID: event.agent_id or "",
                BILLED_USD: event.cost_usd if billed else 0.0,
                UNCONFIRMED_USD: 0.0 if billed else event.cost_usd,
                f"{PREFIX}.attempt.outcome": event.outcome or event.basis,
                **usage_attributes(event.usage),
            },
        )
        span.end(_ns(event.at))

    @staticmethod
    def _context(span: Span | None) -> Context | None:
        return trace.set_span_in_context(span) if span is not None else None


def _incident_attributes(event: ev.Event) -> dict[str, AttributeValue]:
    match event:
        case ev.BudgetCapReached():
            return {f"{PREFIX}.cap": event.cap, f"{PREFIX}.reason": event.reason, "message": event.message}
        case ev.ApiErrorRaised():
            return {
                "error.type": event.error_kind,
                "http.response.status_code": event.status_code or 0,
                REQUEST_ID: event.request_id or "",
                "message": event.message,
            }
        case _:
            return {}


def saved_context(trace_id: str, span_id: str) -> SpanContext | None:
    """The first run's span, from the hex ids saved in its run directory (None if they are not ids)."""
    try:
        context = SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
        )
    except ValueError:
        return None
    return context if context.is_valid else None


def context_ids(span: Span) -> tuple[str, str]:
    context = span.get_span_context()
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
