"""Typed, immutable, past-tense events: the only way information flows up out of the core.

:data:`Event` is the closed union of every kind, each class told apart by its ``kind`` literal;
:func:`from_json` reads a journal line back by that ``kind``. Statuses travel as the enums of
:mod:`core.status`. Consumers ``match`` on an event and end with ``assert_never``, so a new kind
is a type error until each of them handles it.

Producers (sessions, the orchestrator, the ledger) call :meth:`EventBus.publish`, which never
blocks: each subscriber drains its own queue in its own task, so a slow subscriber (a journal on
a slow disk, a busy terminal) cannot stall the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal, TypeAlias, cast, get_args

from core.status import AgentStatus, RunStatus
from core.usage import TokenUsage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBase:
    """Common envelope: which run, agent, layer and turn an event belongs to, and when.

    Not an event itself: an event is one of the classes of the closed union :data:`Event`, each
    told apart by its ``kind``.
    """

    run_id: str
    agent_id: str | None = None
    layer: int | None = None
    turn: int | None = None
    request_id: str | None = None
    at: float = field(default_factory=time.time)

    kind: str = field(default="", init=False)

    def to_json(self) -> dict[str, Any]:
        """One journal line's object; optional fields left unset are omitted (required ones never).

        What ``dataclasses.asdict`` gives, without its deep copy of every field: the journal turns
        every event into JSON, and most fields are strings and numbers, kept as they are.
        """
        layout = _LAYOUTS.get(type(self)) or _layout(type(self))
        data: dict[str, Any] = {"kind": self.kind}
        for name, optional in layout:
            value = getattr(self, name)
            if value is None:
                if optional:
                    continue
            elif type(value) not in _SCALARS:
                value = _plain(value)
            data[name] = value
        return data


_SCALARS = frozenset({str, int, float, bool, AgentStatus, RunStatus})
_LAYOUTS: dict[type, tuple[tuple[str, bool], ...]] = {}


def _layout(cls: type) -> tuple[tuple[str, bool], ...]:
    """An event class's fields in order, each with whether it is optional (defaults to None)."""
    layout = _LAYOUTS[cls] = tuple((f.name, f.default is None) for f in fields(cls))
    return layout


def _plain(value: Any) -> Any:
    """``value`` as ``dataclasses.asdict`` leaves a field: dataclasses as dicts, containers copied."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return type(value)((_plain(k), _plain(v)) for k, v in value.items())
    return copy.deepcopy(value)


def from_json(data: dict[str, Any]) -> Event:
    """The event a journal line holds (``to_json`` inverted), chosen by its ``kind``; ValueError for
    an unknown kind or a malformed line. Fields a line lacks take their defaults and fields this
    version does not know are ignored, so journals of earlier versions still load."""
    kind = data.get("kind")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    names = _FIELD_NAMES[cls]
    values = {k: _from_json_value(k, v) for k, v in data.items() if k in names}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed {kind} event: {exc}") from None


def _from_json_value(name: str, value: Any) -> Any:
    if name == "usage" and isinstance(value, dict):
        return TokenUsage.from_dict(value)
    if name == "seeds" and isinstance(value, dict):
        return {k: AgentSeed(**v) for k, v in value.items() if isinstance(v, dict)}
    if name == "incidents" and isinstance(value, list):
        return tuple(from_json(item) for item in value if isinstance(item, dict))
    if name == "agents" and isinstance(value, list):
        return tuple(tuple(item) for item in value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _as_enum(obj: object, name: str, enum: type[AgentStatus] | type[RunStatus]) -> None:
    """A status given (or read from JSON) as its string becomes the enum; ValueError if it is none."""
    value = getattr(obj, name)
    if not isinstance(value, enum):
        object.__setattr__(obj, name, enum(value))


@dataclass(frozen=True, slots=True)
class AgentSeed:
    """An agent's figures when a run (re)starts: what a resumed or forked run already holds."""

    status: AgentStatus = AgentStatus.PENDING
    turns: int = 0
    searches: int = 0  # billed + unconfirmed, like cost_usd
    cost_usd: float = 0.0
    retries: int = 0
    report_path: str | None = None
    error: str | None = None
    note: str | None = None  # why it waits (an attached app's snapshot of a live run)
    started: bool = False  # it started in the owner's current attempt (ditto)
    unconfirmed_usd: float = 0.0  # the part of cost_usd that is a bound (see core.lifecycle.AgentRow)
    unconfirmed_attempts: int = 0
    unconfirmed_searches: int = 0

    def __post_init__(self) -> None:
        _as_enum(self, "status", AgentStatus)


# --- run and layer ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(EventBase):
    kind: Literal["run_started"] = field(default="run_started", init=False)
    program: str
    run_dir: str
    agents: tuple[tuple[str, int, str], ...] = ()  # (agent id, layer, title)
    seeds: dict[str, AgentSeed] = field(default_factory=dict)  # agents with saved state
    parent: dict[str, str] | None = None
    resumed: bool = False
    simulated: bool = False
    question: str = ""
    started_at: float | None = None  # the run's first start (kept across resumes)
    notice: str | None = None  # what a resume found lost (checkpoints, calls in flight) and charged
    active_s: float = 0.0  # seconds it ran in earlier attempts: its clock goes on from there


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerStarted(EventBase):
    kind: Literal["layer_started"] = field(default="layer_started", init=False)
    agent_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerFinished(EventBase):
    kind: Literal["layer_finished"] = field(default="layer_finished", init=False)
    statuses: dict[str, AgentStatus] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", {k: AgentStatus(v) for k, v in self.statuses.items()})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(EventBase):
    kind: Literal["run_finished"] = field(default="run_finished", init=False)
    status: RunStatus
    cost_usd: float
    message: str | None = None
    report_path: str | None = None

    def __post_init__(self) -> None:
        _as_enum(self, "status", RunStatus)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStopping(EventBase):
    """A stop was asked for. A clean stop (``now`` false) starts no new call and waits, until
    ``deadline`` (epoch seconds) at most, for the calls of ``in_flight`` agents to finish their turn
    and be saved; published again whenever that set shrinks. A stop ``now`` cancels those calls, each
    charged its worst case (``worst_case_usd`` in all, what the ledger had reserved for them)."""

    kind: Literal["run_stopping"] = field(default="run_stopping", init=False)
    now: bool = False
    deadline: float | None = None
    in_flight: tuple[str, ...] = ()
    worst_case_usd: float = 0.0


# --- one agent's life ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStarted(EventBase):
    kind: Literal["agent_started"] = field(default="agent_started", init=False)
    title: str = ""
    resumed_from_turn: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TextStreamed(EventBase):
    """A fragment of the assistant's text (subscribers coalesce these; never one line per token)."""

    kind: Literal["text_streamed"] = field(default="text_streamed", init=False)
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptAbandoned(EventBase):
    """A failed attempt's partial output leaves the conversation; panes may show it as abandoned."""

    kind: Literal["attempt_abandoned"] = field(default="attempt_abandoned", init=False)
    chars: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCharged(EventBase):
    """A failed attempt (retried, given up, killed, stopped) was charged what it may have been billed.

    ``basis`` says how that was bounded: ``reported`` (the API's usage arrived), ``received`` (from
    what streamed before the server ended it) or ``worst_case`` (the request's limits: nothing
    tells how far the API got). ``usage`` and ``cost_usd`` are this attempt's, like a turn's.
    """

    kind: Literal["attempt_charged"] = field(default="attempt_charged", init=False)
    usage: TokenUsage
    cost_usd: float
    basis: str
    outcome: str = ""

    @property
    def billed(self) -> bool:
        """The API reported this usage (billed, exact); any other basis is a bound (unconfirmed)."""
        return self.basis == "reported"

    def to_json(self) -> dict[str, Any]:
        data = EventBase.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchIssued(EventBase):
    kind: Literal["search_issued"] = field(default="search_issued", init=False)
    query: str
    tool_use_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResultsReceived(EventBase):
    kind: Literal["search_results_received"] = field(default="search_results_received", init=False)
    tool_use_id: str = ""
    count: int = 0
    domains: tuple[str, ...] = ()
    error_code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CitationReceived(EventBase):
    kind: Literal["citation_received"] = field(default="citation_received", init=False)
    url: str
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnCompleted(EventBase):
    """One API call finished; ``usage`` and ``cost_usd`` are that call's, not cumulative."""

    kind: Literal["turn_completed"] = field(default="turn_completed", init=False)
    stop_reason: str | None
    usage: TokenUsage
    cost_usd: float
    model: str = ""
    paused_continuation: bool = False

    def to_json(self) -> dict[str, Any]:
        data = EventBase.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


# --- Message Batches (a batch layer's rounds: core/engine/batch_round.py) --------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSubmitted(EventBase):
    """A round of a batch layer went out as one Message Batch (its id and requests written ahead)."""

    kind: Literal["batch_submitted"] = field(default="batch_submitted", init=False)
    batch_id: str
    requests: int
    custom_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchProgress(EventBase):
    """A poll of a batch in progress: its ``request_counts``, and when it is polled next."""

    kind: Literal["batch_progress"] = field(default="batch_progress", init=False)
    batch_id: str
    processing_status: str
    request_counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    next_poll_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchEnded(EventBase):
    """A batch ended and its results were read (each request's goes to its agent)."""

    kind: Literal["batch_ended"] = field(default="batch_ended", init=False)
    batch_id: str
    request_counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBatched(EventBase):
    """The agent's next request is in a batch (``custom_id``): it waits for the batch to end."""

    kind: Literal["agent_batched"] = field(default="agent_batched", init=False)
    batch_id: str
    custom_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPausing(EventBase):
    """Pause requested: the call in flight finishes its turn, then the agent waits."""

    kind: Literal["agent_pausing"] = field(default="agent_pausing", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPaused(EventBase):
    kind: Literal["agent_paused"] = field(default="agent_paused", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentResumed(EventBase):
    kind: Literal["agent_resumed"] = field(default="agent_resumed", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInterrupted(EventBase):
    """The run stopped while this agent worked; its last completed turn is saved for a resume."""

    kind: Literal["agent_interrupted"] = field(default="agent_interrupted", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBudgetWaitStarted(EventBase):
    """The agent's next call does not fit the caps while others hold reservations: it waits."""

    kind: Literal["agent_budget_wait_started"] = field(default="agent_budget_wait_started", init=False)
    cap: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentBudgetWaitEnded(EventBase):
    kind: Literal["agent_budget_wait_ended"] = field(default="agent_budget_wait_ended", init=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentKilled(EventBase):
    kind: Literal["agent_killed"] = field(default="agent_killed", init=False)
    report_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSkipped(EventBase):
    """A later layer's agent never started: every agent whose report it reads failed (``reason``)."""

    kind: Literal["agent_skipped"] = field(default="agent_skipped", init=False)
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFinished(EventBase):
    """The agent ended with a report: ``status`` is completed, refused or budget_exhausted."""

    kind: Literal["agent_finished"] = field(default="agent_finished", init=False)
    status: AgentStatus
    report_path: str | None = None
    turns: int = 0
    searches: int = 0
    cost_usd: float = 0.0

    def __post_init__(self) -> None:
        _as_enum(self, "status", AgentStatus)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentFailed(EventBase):
    kind: Literal["agent_failed"] = field(default="agent_failed", init=False)
    error: str
    status_code: int | None = None
    error_type: str | None = None
    report_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StopReasonUnhandled(EventBase):
    """An unknown stop reason: reported, never a crash."""

    kind: Literal["stop_reason_unhandled"] = field(default="stop_reason_unhandled", init=False)
    stop_reason: str


# --- retries, errors, budget, persistence -------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(EventBase):
    kind: Literal["retry_scheduled"] = field(default="retry_scheduled", init=False)
    error_kind: str
    status_code: int | None
    attempt: int
    wait_s: float
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiErrorRaised(EventBase):
    """An API error that will not be retried (it fails the agent, or the run for a 401)."""

    kind: Literal["api_error_raised"] = field(default="api_error_raised", init=False)
    error_kind: str
    status_code: int | None
    message: str
    fatal_for_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextCompacted(EventBase):
    kind: Literal["context_compacted"] = field(default="context_compacted", init=False)
    dropped_messages: int
    tokens_before: int
    tokens_after: int
    cost_usd: float = 0.0  # the summarising call's dollars (settled like a turn)
    usage: TokenUsage = field(default_factory=TokenUsage)

    def to_json(self) -> dict[str, Any]:
        data = EventBase.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetUpdated(EventBase):
    """The ledger at a moment: latest value wins, so consumers may drop all but the newest.

    ``spent_usd`` and ``searches`` are what the caps count: billed (the usage the API reported) plus
    unconfirmed (bounds charged for ``unconfirmed_attempts`` attempts whose usage never arrived).
    """

    kind: Literal["budget_updated"] = field(default="budget_updated", init=False)
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
    unconfirmed_usd: float = 0.0
    unconfirmed_attempts: int = 0
    unconfirmed_searches: int = 0

    @property
    def billed_usd(self) -> float:
        return self.spent_usd - self.unconfirmed_usd

    @property
    def billed_searches(self) -> int:
        return self.searches - self.unconfirmed_searches

    def to_json(self) -> dict[str, Any]:
        data = EventBase.to_json(self)
        data["usage"] = self.usage.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetCapReached(EventBase):
    """A cap stops the agent's research. ``reason``: "spent" when the call could not fit even with
    nothing else reserved, "reserved" when other agents' reservations held the room."""

    kind: Literal["budget_cap_reached"] = field(default="budget_cap_reached", init=False)
    cap: str  # "usd", "searches", "tokens", "agent_usd", "agent_searches"
    message: str = ""
    reason: str = "spent"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSaved(EventBase):
    kind: Literal["checkpoint_saved"] = field(default="checkpoint_saved", init=False)
    checkpoint_id: str
    bytes_written: int = 0
    sha256: str = ""  # the file's checksum: ``verify`` trusts only checkpoints the journal recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskErrorRaised(EventBase):
    kind: Literal["disk_error_raised"] = field(default="disk_error_raised", init=False)
    path: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberFailed(EventBase):
    """A listener of the bus (a widget, the journal, a display) raised; the agents go on."""

    kind: Literal["subscriber_failed"] = field(default="subscriber_failed", init=False)
    subscriber: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentsRecalled(EventBase):
    """The retry and error log so far, sent to an app that attaches to a live run.

    Shown, never folded: what each of these events did to its agent is already in the figures the
    snapshot's ``run_started`` seeds carry. (Never journaled: the journal holds the events themselves.)
    """

    kind: Literal["incidents_recalled"] = field(default="incidents_recalled", init=False)
    incidents: tuple[Event, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = EventBase.to_json(self)
        data["incidents"] = [event.to_json() for event in self.incidents]
        return data


Event: TypeAlias = (
    RunStarted
    | LayerStarted
    | LayerFinished
    | RunFinished
    | RunStopping
    | AgentStarted
    | TextStreamed
    | AttemptAbandoned
    | AttemptCharged
    | SearchIssued
    | SearchResultsReceived
    | CitationReceived
    | TurnCompleted
    | AgentPausing
    | AgentPaused
    | AgentResumed
    | AgentInterrupted
    | AgentBudgetWaitStarted
    | AgentBudgetWaitEnded
    | AgentKilled
    | AgentSkipped
    | AgentFinished
    | AgentFailed
    | StopReasonUnhandled
    | RetryScheduled
    | ApiErrorRaised
    | ContextCompacted
    | BudgetUpdated
    | BudgetCapReached
    | CheckpointSaved
    | DiskErrorRaised
    | SubscriberFailed
    | IncidentsRecalled
    | BatchSubmitted
    | BatchProgress
    | BatchEnded
    | AgentBatched
)
"""Every event there is: a closed union told apart by ``kind``. Consumers ``match`` on it and end
with ``assert_never``, so a kind added here fails the type check until every consumer handles it
(``tests/core/test_event_exhaustiveness.py`` shows that it does)."""


def _kind_of(cls: type[EventBase]) -> str:
    # The class attribute is the slot's descriptor: the kind is the field's default.
    return next(str(f.default) for f in fields(cls) if f.name == "kind")


EVENT_TYPES: dict[str, type[Event]] = {_kind_of(cls): cls for cls in get_args(Event)}
"""Every event class by its ``kind``: how a journal line becomes an event again."""
_FIELD_NAMES: dict[type[Event], frozenset[str]] = {
    cls: frozenset(f.name for f in fields(cls) if f.init) for cls in EVENT_TYPES.values()
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
