"""The one fold of a run's events: what every front end shows and what ``summary.json`` says.

A :class:`RunView` is a pure reducer: :meth:`RunView.apply` takes one event and returns what it
changed. The orchestrator keeps one (``summary.json`` is written from it), the headless display
and the terminal app keep theirs, and an app attached to another process folds the journal into
one; so every front end agrees with the summary at every event, not only at the end. A resumed
or forked run starts from the figures its ``run_started`` event carries (``seeds``), so finished
agents show as finished with their turns, searches and dollars.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from core import events as ev
from core.control import AgentStatus

INCIDENTS_KEPT = 500
"""Retry and error lines kept for a late viewer (an attached app's first screen)."""

_STATUSES = {status.value: status for status in AgentStatus}
_BASES = {
    "reported": "the usage the API reported",
    "received": "bounded from what streamed before the server cut it off",
    "worst_case": "its reserved worst case: the API may have finished it after we stopped listening",
}
_FINISHED = {
    AgentStatus.COMPLETED.value: AgentStatus.COMPLETED,
    AgentStatus.REFUSED.value: AgentStatus.REFUSED,
    AgentStatus.BUDGET_EXHAUSTED.value: AgentStatus.BUDGET_EXHAUSTED,
}


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent as the run stands: status, API turns, searches, dollars, retries, report."""

    agent_id: str
    layer: int
    title: str = ""
    status: AgentStatus = AgentStatus.PENDING
    turn: int = 0
    searches: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    report_path: str | None = None
    error: str | None = None
    note: str | None = None  # why it waits (a budget cap), while it does
    started: bool = False  # in this attempt: a resumed pause returns it to running, not pending


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
    run_dir: str = ""
    report_path: str | None = None
    cost_usd: float = 0.0
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


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
    budget: ev.BudgetUpdated | None = None


@dataclass(slots=True)
class RunView:
    """Agent rows, the run header, the latest budget and recent incidents, kept by :meth:`apply`."""

    run: RunInfo = field(default_factory=lambda: RunInfo(run_id=""))
    agents: dict[str, AgentRow] = field(default_factory=dict)
    budget: ev.BudgetUpdated | None = None
    incidents: deque[Incident] = field(default_factory=lambda: deque(maxlen=INCIDENTS_KEPT))

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

    def status_of(self, agent_id: str) -> AgentStatus:
        row = self.agents.get(agent_id)
        return row.status if row is not None else AgentStatus.PENDING

    def apply(self, event: ev.Event) -> Change:
        change = Change()
        if isinstance(event, ev.RunStarted):
            self._start(event, change)
        elif isinstance(event, ev.LayerStarted):
            self.run = replace(self.run, layer=event.layer or self.run.layer)
            change.run = self.run
        elif isinstance(event, ev.RunFinished):
            self.run = replace(
                self.run,
                status=event.status,
                finished_at=event.at,
                cost_usd=event.cost_usd,
                message=event.message,
                report_path=event.report_path,
            )
            change.run = self.run
        elif isinstance(event, ev.BudgetUpdated):
            self.budget = change.budget = event
        change.incident = _incident(event)
        if change.incident is not None:
            self.incidents.append(change.incident)
        if event.agent_id is not None and not isinstance(event, ev.TextStreamed):
            row = self._agent_change(event)
            if row is not None:
                self.agents[row.agent_id] = row
                change.rows = (row,)
        return change

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
            run_dir=event.run_dir,
        )
        for agent_id, layer, title in event.agents:
            seed = event.seeds.get(agent_id, ev.AgentSeed())
            status = _STATUSES.get(seed.status, AgentStatus.PENDING)
            self.agents[agent_id] = AgentRow(
                agent_id=agent_id,
                layer=layer,
                title=title,
                status=status,
                turn=seed.turns,
                searches=seed.searches,
                cost_usd=seed.cost_usd,
                retries=seed.retries,
                report_path=seed.report_path,
                error=seed.error,
                note=seed.note,
                started=seed.started,
            )
        change.run, change.all_rows = self.run, True

    def _agent_change(self, event: ev.Event) -> AgentRow | None:
        assert event.agent_id is not None
        row = self.agents.get(event.agent_id) or AgentRow(agent_id=event.agent_id, layer=event.layer or 0)
        turn = row.turn  # turns *completed*: an event of the turn in flight does not count it
        if isinstance(event, ev.AgentStarted):
            return replace(
                row,
                status=AgentStatus.RUNNING,
                title=event.title or row.title,
                turn=max(turn, event.resumed_from_turn),
                started=True,
                note=None,
            )
        if isinstance(event, ev.TurnCompleted | ev.AttemptCharged):
            if isinstance(event, ev.TurnCompleted):  # (a failed attempt completes no turn)
                turn = max(turn, event.turn or 0)
            return replace(
                row,
                turn=turn,
                cost_usd=row.cost_usd + event.cost_usd,
                searches=row.searches + event.usage.web_search_requests,
            )
        if isinstance(event, ev.ContextCompacted):
            return replace(row, cost_usd=row.cost_usd + event.cost_usd)
        if isinstance(event, ev.RetryScheduled):
            return replace(row, retries=row.retries + 1)
        if isinstance(event, ev.AgentPausing):
            return replace(row, status=AgentStatus.PAUSING)
        if isinstance(event, ev.AgentPaused):
            return replace(row, status=AgentStatus.PAUSED)
        if isinstance(event, ev.AgentResumed):
            return replace(row, status=AgentStatus.RUNNING if row.started else AgentStatus.PENDING)
        if isinstance(event, ev.AgentBudgetWaitStarted):
            return replace(row, status=AgentStatus.WAITING_FOR_BUDGET, note=event.message or event.cap)
        if isinstance(event, ev.AgentBudgetWaitEnded):
            return replace(row, status=AgentStatus.RUNNING, note=None)
        if isinstance(event, ev.AgentInterrupted):
            return replace(row, status=AgentStatus.INTERRUPTED, note=None)
        if isinstance(event, ev.AgentKilled):
            return replace(row, status=AgentStatus.KILLED, report_path=event.report_path or row.report_path)
        if isinstance(event, ev.AgentFailed):
            return replace(
                row,
                status=AgentStatus.FAILED,
                error=event.error,
                report_path=event.report_path or row.report_path,
            )
        if isinstance(event, ev.AgentFinished):
            return replace(
                row,
                status=_FINISHED.get(event.status, AgentStatus.COMPLETED),
                report_path=event.report_path or row.report_path,
                turn=max(turn, event.turns),
                note=None,
            )
        return None


def _incident(event: ev.Event) -> Incident | None:
    """The retry and error log's line for an event, if it has one."""
    if isinstance(event, ev.RetryScheduled | ev.ApiErrorRaised):
        retry = isinstance(event, ev.RetryScheduled)
        return Incident(
            at=event.at,
            agent_id=event.agent_id,
            kind=event.error_kind,
            status_code=event.status_code,
            request_id=event.request_id,
            message=event.message,
            attempt=event.attempt if isinstance(event, ev.RetryScheduled) else None,
            wait_s=event.wait_s if isinstance(event, ev.RetryScheduled) else None,
            fatal=not retry,
        )
    if isinstance(event, ev.AgentFailed):
        return Incident(
            at=event.at,
            agent_id=event.agent_id,
            kind=event.error_type or "failed",
            status_code=event.status_code,
            request_id=event.request_id,
            message=event.error,
            fatal=True,
        )
    if isinstance(event, ev.AttemptCharged):
        searches = event.usage.web_search_requests
        what = f"${event.cost_usd:.4f}" + (f" and {searches} search(es)" if searches else "")
        return Incident(
            at=event.at,
            agent_id=event.agent_id,
            kind="charged",
            request_id=event.request_id,
            message=f"{what} charged for the failed attempt ({_BASES.get(event.basis, event.basis)})",
        )
    if isinstance(event, ev.DiskErrorRaised):
        return Incident(at=event.at, agent_id=event.agent_id, kind="disk", message=event.message, fatal=True)
    if isinstance(event, ev.BudgetCapReached):
        return Incident(
            at=event.at, agent_id=event.agent_id, kind=f"cap:{event.cap}", message=event.message, fatal=True
        )
    if isinstance(event, ev.StopReasonUnhandled):
        return Incident(at=event.at, agent_id=event.agent_id, kind="stop_reason", message=event.stop_reason)
    if isinstance(event, ev.SubscriberFailed):
        return Incident(
            at=event.at, agent_id=None, kind="internal", message=f"{event.subscriber}: {event.message}"
        )
    return None
