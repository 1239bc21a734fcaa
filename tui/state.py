"""The run as the terminal app sees it, folded from core events (no Textual here: unit-testable).

The bridge applies every event to a :class:`RunModel` and turns what changed into messages, so
widgets receive whole, current values ("latest value wins") instead of re-deriving state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core import events as ev
from core.control import AgentStatus


@dataclass(frozen=True, slots=True)
class AgentRow:
    agent_id: str
    layer: int
    title: str = ""
    status: AgentStatus = AgentStatus.PENDING
    turn: int = 0
    searches: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    report_path: str | None = None


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    program: str = ""
    status: str = "starting"
    layer: int = 0
    layers: int = 0
    simulated: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    run_dir: str = ""
    report_path: str | None = None
    cost_usd: float = 0.0
    message: str | None = None


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


_FINISHED = {
    "completed": AgentStatus.COMPLETED,
    "refused": AgentStatus.REFUSED,
    "budget_exhausted": AgentStatus.BUDGET_EXHAUSTED,
}


@dataclass(slots=True)
class Change:
    """What one event changed: the bridge posts one message per non-empty field."""

    run: RunInfo | None = None
    rows: tuple[AgentRow, ...] = ()
    all_rows: bool = False
    incident: Incident | None = None


class RunModel:
    """Agent rows and run header, kept current by :meth:`apply`."""

    def __init__(self, run_id: str = "") -> None:
        self.run = RunInfo(run_id=run_id)
        self.agents: dict[str, AgentRow] = {}

    def apply(self, event: ev.Event) -> Change:
        change = Change()
        agent_id = event.agent_id
        if isinstance(event, ev.RunStarted):
            layers = max((layer for _, layer, _ in event.agents), default=0)
            self.run = replace(
                self.run,
                run_id=event.run_id,
                program=event.program,
                status="running",
                layers=layers,
                simulated=event.simulated,
                started_at=event.at,
                finished_at=None,
                run_dir=event.run_dir,
            )
            for aid, layer, title in event.agents:
                self.agents.setdefault(aid, AgentRow(agent_id=aid, layer=layer, title=title))
            change.run, change.all_rows = self.run, True
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
        elif isinstance(event, (ev.RetryScheduled, ev.ApiErrorRaised)):
            change.incident = Incident(
                at=event.at,
                agent_id=agent_id,
                kind=event.error_kind,
                status_code=event.status_code,
                request_id=event.request_id,
                message=event.message,
                attempt=event.attempt if isinstance(event, ev.RetryScheduled) else None,
                wait_s=event.wait_s if isinstance(event, ev.RetryScheduled) else None,
                fatal=isinstance(event, ev.ApiErrorRaised),
            )
            if isinstance(event, ev.RetryScheduled) and agent_id is not None:
                row = self._row(event)
                change.rows = (self._set(replace(row, retries=row.retries + 1)),)
        elif isinstance(event, ev.DiskErrorRaised):
            change.incident = Incident(
                at=event.at, agent_id=agent_id, kind="disk", message=event.message, fatal=True
            )
        elif isinstance(event, ev.BudgetCapReached):
            change.incident = Incident(
                at=event.at, agent_id=agent_id, kind=f"cap:{event.cap}", message=event.message, fatal=True
            )
        elif isinstance(event, ev.StopReasonUnhandled):
            change.incident = Incident(
                at=event.at, agent_id=agent_id, kind="stop_reason", message=event.stop_reason
            )
        if agent_id is not None and not isinstance(event, (ev.RetryScheduled, ev.TextStreamed)):
            changed = self._agent_change(event)
            if changed is not None:
                change.rows = (changed,)
            if isinstance(event, ev.AgentFailed):
                change.incident = Incident(
                    at=event.at,
                    agent_id=agent_id,
                    kind=event.error_type or "failed",
                    status_code=event.status_code,
                    request_id=event.request_id,
                    message=event.error,
                    fatal=True,
                )
        return change

    def _row(self, event: ev.Event) -> AgentRow:
        assert event.agent_id is not None
        row = self.agents.get(event.agent_id)
        if row is None:
            row = AgentRow(agent_id=event.agent_id, layer=event.layer or 0)
        return row

    def _set(self, row: AgentRow) -> AgentRow:
        self.agents[row.agent_id] = row
        return row

    def _agent_change(self, event: ev.Event) -> AgentRow | None:
        row = self._row(event)
        turn = max(row.turn, event.turn or 0)
        if isinstance(event, ev.AgentStarted):
            new = replace(
                row,
                status=AgentStatus.RUNNING,
                title=event.title or row.title,
                layer=event.layer or row.layer,
                turn=max(turn, event.resumed_from_turn),
            )
        elif isinstance(event, ev.TurnCompleted):
            new = replace(
                row,
                turn=turn,
                cost_usd=row.cost_usd + event.cost_usd,
                searches=row.searches + event.usage.web_search_requests,
            )
        elif isinstance(event, ev.AgentPausing):
            new = replace(row, status=AgentStatus.PAUSING, turn=turn)
        elif isinstance(event, ev.AgentPaused):
            new = replace(row, status=AgentStatus.PAUSED, turn=turn)
        elif isinstance(event, ev.AgentResumed):
            new = replace(row, status=AgentStatus.RUNNING, turn=turn)
        elif isinstance(event, ev.AgentKilled):
            new = replace(row, status=AgentStatus.KILLED, report_path=event.report_path or row.report_path)
        elif isinstance(event, ev.AgentFailed):
            new = replace(row, status=AgentStatus.FAILED, report_path=event.report_path or row.report_path)
        elif isinstance(event, ev.AgentFinished):
            new = replace(
                row,
                status=_FINISHED.get(event.status, AgentStatus.COMPLETED),
                report_path=event.report_path or row.report_path,
                turn=max(turn, event.turns),
                searches=event.searches or row.searches,
                cost_usd=event.cost_usd or row.cost_usd,
            )
        elif event.turn is not None and turn != row.turn:
            new = replace(row, turn=turn)
        else:
            return None
        return self._set(new)
