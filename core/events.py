"""Typed, immutable, past-tense events: the only way information flows up out of the core.

Producers (sessions, the orchestrator, the ledger) call :meth:`EventBus.publish`, which never
blocks: each subscriber drains its own queue in its own task, so a slow subscriber (a journal on
a slow disk, a busy terminal) cannot stall the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, cast

from core.api.usage import TokenUsage


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
        data = asdict(self)
        data = {"kind": self.kind, **{k: v for k, v in data.items() if v is not None}}
        return data


# --- run and layer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    program: str
    run_dir: str
    agents: tuple[tuple[str, int, str], ...] = ()  # (agent id, layer, title)
    statuses: dict[str, str] = field(default_factory=dict)  # agent id -> status (restored agents)
    parent: dict[str, str] | None = None
    resumed: bool = False
    simulated: bool = False


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
    kind: ClassVar[str] = "budget_cap_reached"
    cap: str  # "usd", "searches", "tokens", "agent_usd", "agent_searches"
    message: str = ""


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


# --- the bus ------------------------------------------------------------------------------------

Handler = Callable[[Event], Awaitable[None] | None]
BatchHandler = Callable[[list[Event]], Awaitable[None]]


class Subscription:
    """One subscriber's private queue and the task that drains it."""

    def __init__(self, handler: Handler | BatchHandler, name: str) -> None:
        self.name = name
        self._handler = handler
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"events:{name}")
        self.errors = 0

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
            except Exception:  # a broken subscriber must not take the run down
                self.errors += 1

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
                except Exception:  # a broken subscriber must not take the run down
                    self.errors += 1


class EventBus:
    """Fan-out of events to subscribers; ``publish`` is synchronous and never waits."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._sync_listeners: list[Callable[[Event], None]] = []

    def subscribe(self, handler: Handler, *, name: str = "subscriber") -> Subscription:
        subscription = Subscription(handler, name)
        self._subscriptions.append(subscription)
        return subscription

    def subscribe_batches(self, handler: BatchHandler, *, name: str = "subscriber") -> Subscription:
        """Like :meth:`subscribe`, but the handler receives every event queued so far in one list."""
        subscription = BatchSubscription(handler, name)
        self._subscriptions.append(subscription)
        return subscription

    def listen(self, listener: Callable[[Event], None]) -> None:
        """A cheap synchronous listener called inline (it must not block: e.g. ``post_message``)."""
        self._sync_listeners.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._sync_listeners:
            with contextlib.suppress(Exception):
                listener(event)
        for subscription in self._subscriptions:
            subscription.put(event)

    async def close(self) -> None:
        """Deliver everything already published, then stop the subscriber tasks."""
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()
