"""The one fold of a run's events: what every front end shows and what ``summary.json`` says.

A :class:`RunView` is a pure reducer: :meth:`RunView.apply` takes one event and returns what it
changed. An agent's row moves only by :func:`core.lifecycle.step`; the view adds the run's header,
the latest budget and the retry and error log. The orchestrator keeps one (``summary.json`` is
written from it), the headless display and the terminal app keep theirs, and an app attached to
another process folds the journal into one; so every front end agrees with the summary at every
event, not only at the end. A resumed or forked run starts from the figures its ``run_started``
event carries (``seeds``), so finished agents show as finished with their turns, searches and
dollars.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import assert_never

from core import events as ev
from core.lifecycle import AgentRow, seeded, step
from core.status import AgentStatus
from core.usage import Unconfirmed

__all__ = ["INCIDENTS_KEPT", "AgentRow", "Change", "Incident", "RunInfo", "RunView", "incident_of"]

INCIDENTS_KEPT = 500
"""Retry and error lines kept for a late viewer (an attached app's first screen)."""

_BASES = {
    "reported": "the usage the API reported",
    "received": "bounded from what streamed before the server cut it off",
    "worst_case": "its reserved worst case: the API may have finished it after we stopped listening",
}


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One Message Batch of a batch layer, as its events tell it: what the front ends show."""

    layer: int
    batch_id: str
    requests: int
    submitted_at: float
    request_counts: dict[str, int] = field(default_factory=dict)
    next_poll_at: float | None = None
    ended_at: float | None = None

    def elapsed_s(self, now: float) -> float:
        return max(0.0, (self.ended_at or now) - self.submitted_at)

    def text(self, now: float) -> str:
        """``L1 batch msgbatch_… 3/5 done (1 errored) · 2m10s · next poll in 12s``."""
        counts = self.request_counts
        done = sum(counts.get(k, 0) for k in ("succeeded", "errored", "canceled", "expired"))
        odd = ", ".join(f"{counts[k]} {k}" for k in ("errored", "canceled", "expired") if counts.get(k))
        elapsed = int(self.elapsed_s(now))
        line = f"L{self.layer} batch {self.batch_id}: {done}/{self.requests} done"
        line += f" ({odd})" if odd else ""
        line += f" · {elapsed // 60}m{elapsed % 60:02d}s"
        if self.ended_at is not None:
            return line + " · ended"
        if self.next_poll_at is not None:
            line += f" · next poll in {max(0.0, self.next_poll_at - now):.0f}s"
        return line


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    program: str = ""
    question: str = ""
    status: str = "starting"  # then a RunStatus value
    layer: int = 0
    layers: int = 0
    simulated: bool = False
    resumed: bool = False
    parent: dict[str, str] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    running_since: float | None = None  # this attempt's start (a resume's, not the run's first)
    active_before_s: float = 0.0  # seconds the run ran in earlier attempts (the time it was stopped is not)
    run_dir: str = ""
    report_path: str | None = None
    cost_usd: float = 0.0
    message: str | None = None
    stopping: ev.RunStopping | None = None  # a stop under way: its deadline and the calls it waits for
    batch: BatchLine | None = None  # the latest Message Batch of a batch layer (the header shows it)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def stop_left_s(self, now: float) -> float | None:
        """Seconds left of a clean stop's grace (None: no clean stop under way)."""
        stopping = self.stopping
        if stopping is None or stopping.now or stopping.deadline is None or self.finished:
            return None
        return max(0.0, stopping.deadline - now)


@dataclass(frozen=True, slots=True)
class Incident:
    """One line of the retry and error log."""

    at: float
    agent_id: str | None
    kind: str
    status_code: int | None = None
    request_id: str | None = None
    attempt: int | None = None
    wait_s: float | None = None
    message: str = ""
    fatal: bool = False


@dataclass(slots=True)
class Change:
    """What one event changed, so a front end repaints only that."""

    run: RunInfo | None = None
    rows: tuple[AgentRow, ...] = ()
    all_rows: bool = False
    incident: Incident | None = None
    recalled: tuple[Incident, ...] = ()  # an attached app's log so far (before ``incident``)
    budget: ev.BudgetUpdated | None = None
    batch: BatchLine | None = None


@dataclass(slots=True)
class RunView:
    """Agent rows, the run header, the latest budget and recent incidents, kept by :meth:`apply`."""

    run: RunInfo = field(default_factory=lambda: RunInfo(run_id=""))
    agents: dict[str, AgentRow] = field(default_factory=dict)
    budget: ev.BudgetUpdated | None = None
    incidents: deque[Incident] = field(default_factory=lambda: deque(maxlen=INCIDENTS_KEPT))
    batches: dict[str, BatchLine] = field(default_factory=dict)  # by id, in submission order

    @property
    def live_batches(self) -> list[BatchLine]:
        """The batches not ended yet, and each batch layer's last one (what the front ends show)."""
        last = {line.layer: line for line in self.batches.values()}
        return [b for b in self.batches.values() if b.ended_at is None or last[b.layer] is b]

    @classmethod
    def of(cls, events: list[ev.Event]) -> RunView:
        view = cls()
        for event in events:
            view.apply(event)
        return view

    @property
    def spent_usd(self) -> float:
        """The run's dollars: the sum of its agents' (equal to the ledger's, by construction)."""
        return sum(row.cost_usd for row in self.agents.values())

    @property
    def searches(self) -> int:
        return sum(row.searches for row in self.agents.values())

    @property
    def unconfirmed(self) -> Unconfirmed:
        """The part of the run's spend that is a bound (attempts whose usage never arrived): the
        sum of its agents'. The rest (``spent_usd - unconfirmed.usd``) is billed."""
        total = Unconfirmed()
        for row in self.agents.values():
            total = total.plus(row.unconfirmed_usd, row.unconfirmed_searches, row.unconfirmed_attempts)
        return total

    def status_of(self, agent_id: str) -> AgentStatus:
        row = self.agents.get(agent_id)
        return row.status if row is not None else AgentStatus.PENDING

    def apply(self, event: ev.Event) -> Change:
        change = Change()
        agent_id = event.agent_id
        if agent_id is not None:
            row = self.agents.get(agent_id) or AgentRow(agent_id=agent_id, layer=event.layer or 0)
            new = step(row, event)
            if new is not row:
                self.agents[agent_id] = new
                change.rows = (new,)
        match event:
            case ev.TextStreamed():  # the hot path first
                return change
            case ev.RunStarted():
                self._start(event, change)
            case ev.LayerStarted():
                self.run = replace(self.run, layer=event.layer or self.run.layer)
                change.run = self.run
            case ev.RunFinished():
                self.run = replace(
                    self.run,
                    status=event.status.value,
                    finished_at=event.at,
                    cost_usd=event.cost_usd,
                    message=event.message,
                    report_path=event.report_path,
                )
                change.run = self.run
            case ev.RunStopping():
                self.run = change.run = replace(self.run, stopping=event)
            case ev.BudgetUpdated():
                self.budget = change.budget = event
            case ev.BatchSubmitted():
                change.batch = self.batches[event.batch_id] = BatchLine(
                    layer=event.layer or 0, batch_id=event.batch_id, requests=event.requests,
                    submitted_at=event.at, request_counts={"processing": event.requests},
                )  # fmt: skip
                self.run = change.run = replace(self.run, batch=change.batch)
            case ev.BatchProgress() | ev.BatchEnded():
                change.batch = self._batch_moved(event)
                if self.run.batch is None or self.run.batch.batch_id == event.batch_id:
                    self.run = change.run = replace(self.run, batch=change.batch)
            case ev.IncidentsRecalled():
                change.recalled = tuple(i for e in event.incidents if (i := incident_of(e)) is not None)
                self.incidents.extend(change.recalled)
            case (
                ev.LayerFinished()
                | ev.AgentBatched()
                | ev.AgentStarted()
                | ev.AttemptAbandoned()
                | ev.AttemptCharged()
                | ev.SearchIssued()
                | ev.SearchResultsReceived()
                | ev.CitationReceived()
                | ev.TurnCompleted()
                | ev.AgentPausing()
                | ev.AgentPaused()
                | ev.AgentResumed()
                | ev.AgentInterrupted()
                | ev.AgentBudgetWaitStarted()
                | ev.AgentBudgetWaitEnded()
                | ev.AgentKilled()
                | ev.AgentSkipped()
                | ev.AgentFinished()
                | ev.AgentFailed()
                | ev.StopReasonUnhandled()
                | ev.RetryScheduled()
                | ev.ApiErrorRaised()
                | ev.ContextCompacted()
                | ev.BudgetCapReached()
                | ev.CheckpointSaved()
                | ev.DiskErrorRaised()
                | ev.SubscriberFailed()
            ):
                pass  # (their effect on an agent's row is the lifecycle's; on the log, incident_of's)
            case _:
                assert_never(event)
        change.incident = incident_of(event)
        if change.incident is not None:
            self.incidents.append(change.incident)
        return change

    def _batch_moved(self, event: ev.BatchProgress | ev.BatchEnded) -> BatchLine:
        line = self.batches.get(event.batch_id) or BatchLine(
            layer=event.layer or 0, batch_id=event.batch_id,
            requests=sum(event.request_counts.values()), submitted_at=event.at - event.elapsed_s,
        )  # fmt: skip
        if isinstance(event, ev.BatchEnded):
            counts = dict(event.request_counts)
            line = replace(line, request_counts=counts, ended_at=event.at, next_poll_at=None)
        else:
            poll = None if event.next_poll_s is None else event.at + event.next_poll_s
            line = replace(line, request_counts=dict(event.request_counts), next_poll_at=poll)
        self.batches[event.batch_id] = line
        return line

    def _start(self, event: ev.RunStarted, change: Change) -> None:
        layers = max((layer for _, layer, _ in event.agents), default=0)
        self.run = replace(
            self.run,
            run_id=event.run_id,
            program=event.program,
            question=event.question,
            status="running",
            layers=layers,
            simulated=event.simulated,
            resumed=event.resumed,
            parent=event.parent,
            started_at=event.started_at or event.at,
            finished_at=None,
            running_since=event.at,
            active_before_s=event.active_s,
            run_dir=event.run_dir,
        )
        for agent_id, layer, title in event.agents:
            self.agents[agent_id] = seeded(agent_id, layer, title, event.seeds.get(agent_id, ev.AgentSeed()))
        change.run, change.all_rows = self.run, True


def incident_of(event: ev.Event) -> Incident | None:
    """The retry and error log's line for an event, if it has one."""
    agent_id = event.agent_id
    match event:
        case ev.RetryScheduled():
            return Incident(
                at=event.at, agent_id=agent_id, kind=event.error_kind, status_code=event.status_code,
                request_id=event.request_id, message=event.message, attempt=event.attempt,
                wait_s=event.wait_s,
            )  # fmt: skip
        case ev.ApiErrorRaised():
            return Incident(
                at=event.at, agent_id=agent_id, kind=event.error_kind, status_code=event.status_code,
                request_id=event.request_id, message=event.message, fatal=True,
            )  # fmt: skip
        case ev.AgentFailed():
            return Incident(
                at=event.at, agent_id=agent_id, kind=event.error_type or "failed",
                status_code=event.status_code, request_id=event.request_id, message=event.error, fatal=True,
            )  # fmt: skip
        case ev.AgentSkipped():
            return Incident(at=event.at, agent_id=agent_id, kind="skipped", message=event.reason, fatal=True)
        case ev.AttemptCharged():
            searches = event.usage.web_search_requests
            what = f"${event.cost_usd:.4f}" + (f" and {searches} search(es)" if searches else "")
            basis = _BASES.get(event.basis, event.basis)
            return Incident(
                at=event.at, agent_id=agent_id, kind="charged", request_id=event.request_id,
                message=f"{what} charged for the failed attempt ({basis})",
            )  # fmt: skip
        case ev.DiskErrorRaised():
            return Incident(at=event.at, agent_id=agent_id, kind="disk", message=event.message, fatal=True)
        case ev.BudgetCapReached():
            return Incident(
                at=event.at, agent_id=agent_id, kind=f"cap:{event.cap}", message=event.message, fatal=True
            )
        case ev.StopReasonUnhandled():
            return Incident(at=event.at, agent_id=agent_id, kind="stop_reason", message=event.stop_reason)
        case ev.SubscriberFailed():
            return Incident(
                at=event.at, agent_id=None, kind="internal", message=f"{event.subscriber}: {event.message}"
            )
        case ev.RunStarted() if event.notice:
            return Incident(at=event.at, agent_id=None, kind="restored", message=event.notice)
        case (
            ev.RunStarted()
            | ev.LayerStarted()
            | ev.LayerFinished()
            | ev.RunFinished()
            | ev.AgentStarted()
            | ev.TextStreamed()
            | ev.AttemptAbandoned()
            | ev.SearchIssued()
            | ev.SearchResultsReceived()
            | ev.CitationReceived()
            | ev.TurnCompleted()
            | ev.AgentPausing()
            | ev.AgentPaused()
            | ev.AgentResumed()
            | ev.AgentInterrupted()
            | ev.AgentBudgetWaitStarted()
            | ev.AgentBudgetWaitEnded()
            | ev.AgentKilled()
            | ev.AgentFinished()
            | ev.ContextCompacted()
            | ev.BudgetUpdated()
            | ev.CheckpointSaved()
            | ev.RunStopping()
            | ev.IncidentsRecalled()  # (its incidents are logged one by one: see RunView.apply)
            | ev.BatchSubmitted()
            | ev.BatchProgress()
            | ev.BatchEnded()
            | ev.AgentBatched()
        ):
            return None
        case _:
            assert_never(event)
