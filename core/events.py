"""Typed, immutable, past-tense events: the only way information flows up out of the core.

Producers (sessions, the orchestrator, the ledger) call :meth:`EventBus.publish`, which never
blocks: each subscriber drains its own queue in its own task, so a slow subscriber (a journal on
a slow disk, a busy terminal) cannot stall the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, cast

from core.api.usage import TokenUsage

log = logging.getLogger(__name__)
_OPTIONAL_FIELDS: dict[type, frozenset[str]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Common envelope: which run, agent, layer and turn an event belongs to, and when."""

    run_id: str
    agent_id: str | None = None
    layer: int | None = None
    turn: int | None = None
    request_id: str | None = None
    at: float = field(default_factory=time.time)

    kind: ClassVar[str] = "event"

    def to_json(self) -> dict[str, Any]:
        """One journal line's object; optional fields left unset are omitted (required ones never)."""
        data = asdict(self)
        optional = _OPTIONAL_FIELDS.get(type(self))
        if optional is None:
            optional = _OPTIONAL_FIELDS[type(self)] = frozenset(
                f.name for f in fields(self) if f.default is None
            )
        return {"kind": self.kind, **{k: v for k, v in data.items() if v is not None or k not in optional}}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Event:
        """The event a journal line holds (``to_json`` inverted); ValueError for an unknown shape."""
        kind = data.get("kind")
        cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"unknown event kind {kind!r}")
        names = {f.name for f in fields(cls)}
        values = {k: _from_json_value(k, v) for k, v in data.items() if k in names}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"malformed {kind} event: {exc}") from None


def _from_json_value(name: str, value: Any) -> Any:
    if name == "usage" and isinstance(value, dict):
        return TokenUsage.from_dict(value)
    if name == "seeds" and isinstance(value, dict):
        return {k: AgentSeed(**v) for k, v in value.items() if isinstance(v, dict)}
    if name == "agents" and isinstance(value, list):
        return tuple(tuple(item) for item in value)
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(frozen=True, slots=True)
class AgentSeed:
    """An agent's figures when a run (re)starts: what a resumed or forked run already holds."""

    status: str = "pending"
    turns: int = 0
    searches: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    report_path: str | None = None
    error: str | None = None
    note: str | None = None  # why it waits (an attached app's snapshot of a live run)
    started: bool = False  # it started in the owner's current attempt (ditto)


# --- run and layer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    program: str
    run_dir: str
    agents: tuple[tuple[str, int, str], ...] = ()  # (agent id, layer, title)
    seeds: dict[str, AgentSeed] = field(default_factory=dict)  # agents with saved state
    parent: dict[str, str] | None = None
    resumed: bool = False
    simulated: bool = False
    question: str = ""
    started_at: float | None = None  # the run's first start (kept across resumes)


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerStarted(Event):
    kind: ClassVar[str] = "layer_started"
    agent_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerFinished(Event):
    kind: ClassVar[str] = "layer_finished"
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    status: str
    cost_usd: float
    message: str | None = None
    report_path: str | None = None


# --- one agent's life ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStarted(Event):
    kind: ClassVar[str] = "agent_started"
    title: str = ""
    resumed_from_turn: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TextStreamed(Event):
    """A fragment of the assistant's text (subscribers coalesce these; never one line per token)."""

    kind: ClassVar[str] = "text_streamed"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptAbandoned(Event):
    """A failed attempt's partial output leaves the conversation; panes may show it as abandoned."""

    kind: ClassVar[str] = "attempt_abandoned"
    chars: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCharged(Event):
    """A failed attempt (retried, given up, killed, stopped) was charged what it may have been billed.

    ``basis`` says how that was bounded: ``reported`` (the API's usage arrived), ``received`` (from
    what streamed before the server ended it) or ``worst_case`` (the request's limits: nothing
    tells how far the API got). ``usage`` and ``cost_usd`` are this attempt's, like a turn's.
    """

    kind: ClassVar[str] = "attempt_charged"
    usage: TokenUsage
    cost_usd: float
    basis: str
    outcome: str = ""

    def to_json(self) -> dict[str, Any]:
        data = Event.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchIssued(Event):
    kind: ClassVar[str] = "search_issued"
    query: str
    tool_use_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResultsReceived(Event):
    kind: ClassVar[str] = "search_results_received"
    tool_use_id: str = ""
    count: int = 0
    domains: tuple[str, ...] = ()
    error_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CitationReceived(Event):
    kind: ClassVar[str] = "citation_received"
    url: str
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCompleted(Event):
    """One API call finished; ``usage`` and ``cost_usd`` are that call's, not cumulative."""

    kind: ClassVar[str] = "turn_completed"
    stop_reason: str | None
    usage: TokenUsage
    cost_usd: float
    model: str = ""
    paused_continuation: bool = False

    def to_json(self) -> dict[str, Any]:
        data = Event.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPausing(Event):
    """Pause requested: the call in flight finishes its turn, then the agent waits."""

    kind: ClassVar[str] = "agent_pausing"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPaused(Event):
    kind: ClassVar[str] = "agent_paused"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentResumed(Event):
    kind: ClassVar[str] = "agent_resumed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInterrupted(Event):
    """The run stopped while this agent worked; its last completed turn is saved for a resume."""

    kind: ClassVar[str] = "agent_interrupted"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBudgetWaitStarted(Event):
    """The agent's next call does not fit the caps while others hold reservations: it waits."""

    kind: ClassVar[str] = "agent_budget_wait_started"
    cap: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBudgetWaitEnded(Event):
    kind: ClassVar[str] = "agent_budget_wait_ended"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentKilled(Event):
    kind: ClassVar[str] = "agent_killed"
    report_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFinished(Event):
    """The agent ended with a report: ``status`` is completed, refused or budget_exhausted."""

    kind: ClassVar[str] = "agent_finished"
    status: str
    report_path: str | None = None
    turns: int = 0
    searches: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFailed(Event):
    kind: ClassVar[str] = "agent_failed"
    error: str
    status_code: int | None = None
    error_type: str | None = None
    report_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopReasonUnhandled(Event):
    """An unknown stop reason: reported, never a crash."""

    kind: ClassVar[str] = "stop_reason_unhandled"
    stop_reason: str


# --- retries, errors, budget, persistence -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(Event):
    kind: ClassVar[str] = "retry_scheduled"
    error_kind: str
    status_code: int | None
    attempt: int
    wait_s: float
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiErrorRaised(Event):
    """An API error that will not be retried (it fails the agent, or the run for a 401)."""

    kind: ClassVar[str] = "api_error_raised"
    error_kind: str
    status_code: int | None
    message: str
    fatal_for_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextCompacted(Event):
    kind: ClassVar[str] = "context_compacted"
    dropped_messages: int
    tokens_before: int
    tokens_after: int
    cost_usd: float = 0.0  # the summarising call's dollars (settled like a turn)
    usage: TokenUsage = field(default_factory=TokenUsage)

    def to_json(self) -> dict[str, Any]:
        data = Event.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetUpdated(Event):
    """The ledger at a moment: latest value wins, so consumers may drop all but the newest."""

    kind: ClassVar[str] = "budget_updated"
    spent_usd: float
    reserved_usd: float
    cap_usd: float | None
    searches: int
    reserved_searches: int
    search_cap: int | None
    tokens: int
    token_cap: int | None
    burn_usd_per_min: float
    seconds_to_cap: float | None
    usage: TokenUsage = field(default_factory=TokenUsage)

    def to_json(self) -> dict[str, Any]:
        data = Event.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetCapReached(Event):
    """A cap stops the agent's research. ``reason``: "spent" when the call could not fit even with
    nothing else reserved, "reserved" when other agents' reservations held the room."""

    kind: ClassVar[str] = "budget_cap_reached"
    cap: str  # "usd", "searches", "tokens", "agent_usd", "agent_searches"
    message: str = ""
    reason: str = "spent"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSaved(Event):
    kind: ClassVar[str] = "checkpoint_saved"
    checkpoint_id: str
    bytes_written: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskErrorRaised(Event):
    kind: ClassVar[str] = "disk_error_raised"
    path: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberFailed(Event):
    """A listener of the bus (a widget, the journal, a display) raised; the agents go on."""

    kind: ClassVar[str] = "subscriber_failed"
    subscriber: str
    message: str


def _event_types() -> dict[str, type[Event]]:
    # From the module's names, not ``__subclasses__``: ``slots=True`` replaces each class, and the
    # discarded originals linger there.
    return {
        value.kind: value
        for value in globals().values()
        if isinstance(value, type) and issubclass(value, Event) and value is not Event
    }


# --- the bus ------------------------------------------------------------------------------------

Handler = Callable[[Event], Awaitable[None] | None]
BatchHandler = Callable[[list[Event]], Awaitable[None]]


ErrorReporter = Callable[[str, BaseException, Event | None], None]


class Subscription:
    """One subscriber's private queue and the task that drains it."""

    def __init__(self, handler: Handler | BatchHandler, name: str, on_error: ErrorReporter) -> None:
        self.name = name
        self._handler = handler
        self._on_error = on_error
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"events:{name}")
        self.errors = 0

    def _failed(self, error: BaseException, event: Event | None) -> None:
        self.errors += 1
        self._on_error(self.name, error, event)

    def put(self, event: Event | None) -> None:
        self._queue.put_nowait(event)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def _drain(self) -> None:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            try:
                result = cast(Handler, self._handler)(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # a broken subscriber must not take the run down
                self._failed(error, event)

    async def close(self) -> None:
        self.put(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class BatchSubscription(Subscription):
    """Hands the subscriber everything queued at once: one disk write for a burst of events."""

    async def _drain(self) -> None:
        handler = cast(BatchHandler, self._handler)
        closing = False
        while not closing:
            batch: list[Event] = []
            event = await self._queue.get()
            while event is not None:
                batch.append(event)
                if self._queue.empty():
                    break
                event = self._queue.get_nowait()
            closing = event is None
            if batch:
                try:
                    await handler(batch)
                except Exception as error:  # a broken subscriber must not take the run down
                    self._failed(error, batch[0])


class EventBus:
    """Fan-out of events to subscribers; ``publish`` is synchronous and never waits."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._sync_listeners: list[tuple[Callable[[Event], object], str]] = []
        self.failures = 0

    def subscribe(self, handler: Handler, *, name: str = "subscriber") -> Subscription:
        subscription = Subscription(handler, name, self._report_failure)
        self._subscriptions.append(subscription)
        return subscription

    def subscribe_batches(self, handler: BatchHandler, *, name: str = "subscriber") -> Subscription:
        """Like :meth:`subscribe`, but the handler receives every event queued so far in one list."""
        subscription = BatchSubscription(handler, name, self._report_failure)
        self._subscriptions.append(subscription)
        return subscription

    def listen(self, listener: Callable[[Event], object], *, name: str | None = None) -> None:
        """A cheap synchronous listener called inline (it must not block: e.g. ``post_message``)."""
        self._sync_listeners.append((listener, name or str(getattr(listener, "__qualname__", "listener"))))

    def publish(self, event: Event) -> None:
        for listener, name in self._sync_listeners:
            try:
                listener(event)
            except Exception as error:  # one broken listener must not stop the agents or the others
                self._report_failure(name, error, event)
        for subscription in self._subscriptions:
            subscription.put(event)

    def _report_failure(self, name: str, error: BaseException, event: Event | None) -> None:
        """Log a subscriber's failure with its traceback and publish it as an error event."""
        self.failures += 1
        kind = event.kind if event is not None else "?"
        log.error("event subscriber %s failed on %s", name, kind, exc_info=error)
        if event is None or isinstance(event, SubscriberFailed):
            return  # never report a failure about a failure (no loop)
        self.publish(
            SubscriberFailed(run_id=event.run_id, subscriber=name, message=f"{type(error).__name__}: {error}")
        )

    async def close(self) -> None:
        """Deliver everything already published, then stop the subscriber tasks."""
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()


EVENT_TYPES: dict[str, type[Event]] = _event_types()
"""Every event class by its ``kind``: how a journal line becomes an event again."""
