"""One agent's lifecycle as one pure function: ``step(row, event) -> row``.

An :class:`AgentRow` is everything a run knows about one agent: its status, the API turns it
completed, its searches, dollars and retries, its report and error. :func:`step` is the only code
that moves a row, and every agent event implies the row it leaves behind (its resulting status
included). So the agent's handle in the owner (:mod:`core.engine.agent`), the run's view
(:mod:`core.view`, from which ``summary.json`` is written), checkpoints, an attached app's
snapshot and the tests' fakes all hold the same figures by construction: they fold the same events
with the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, assert_never

from core import events as ev
from core.status import REPORT_STATUSES, AgentStatus
from core.usage import ALL_BILLED, Unconfirmed


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent as the run stands: status, API turns, searches, dollars, retries, report.

    ``cost_usd`` and ``searches`` are what the caps count; of them, ``unconfirmed_*`` is the bound
    charged for the ``unconfirmed_attempts`` whose usage never arrived, the rest (``billed_*``)
    the usage the API reported.
    """

    agent_id: str
    layer: int
    title: str = ""
    status: AgentStatus = AgentStatus.PENDING
    turn: int = 0  # API turns *completed*: an event of the turn in flight does not count it
    searches: int = 0
    cost_usd: float = 0.0  # every dollar charged to the agent (see _spent)
    retries: int = 0
    report_path: str | None = None
    error: str | None = None
    note: str | None = None  # why it waits (a budget cap), while it does
    started: bool = False  # in this attempt: a resumed pause returns it to running, not pending
    unconfirmed_usd: float = 0.0
    unconfirmed_attempts: int = 0
    unconfirmed_searches: int = 0

    @property
    def billed_usd(self) -> float:
        return self.cost_usd - self.unconfirmed_usd

    @property
    def billed_searches(self) -> int:
        return self.searches - self.unconfirmed_searches

    @property
    def unconfirmed(self) -> Unconfirmed:
        return Unconfirmed(self.unconfirmed_usd, self.unconfirmed_attempts, self.unconfirmed_searches)


def seeded(agent_id: str, layer: int, title: str, seed: ev.AgentSeed) -> AgentRow:
    """The row a ``run_started`` event's seed describes (a resumed, forked or attached run)."""
    return AgentRow(
        agent_id=agent_id,
        layer=layer,
        title=title,
        status=seed.status,
        turn=seed.turns,
        searches=seed.searches,
        cost_usd=seed.cost_usd,
        retries=seed.retries,
        report_path=seed.report_path,
        error=seed.error,
        note=seed.note,
        started=seed.started,
        unconfirmed_usd=seed.unconfirmed_usd,
        unconfirmed_attempts=seed.unconfirmed_attempts,
        unconfirmed_searches=seed.unconfirmed_searches,
    )


def seed_of(row: AgentRow) -> ev.AgentSeed:
    """The seed that :func:`seeded` turns back into ``row`` (identity aside)."""
    return ev.AgentSeed(
        status=row.status,
        turns=row.turn,
        searches=row.searches,
        cost_usd=row.cost_usd,
        retries=row.retries,
        report_path=row.report_path,
        error=row.error,
        note=row.note,
        started=row.started,
        unconfirmed_usd=row.unconfirmed_usd,
        unconfirmed_attempts=row.unconfirmed_attempts,
        unconfirmed_searches=row.unconfirmed_searches,
    )


def saved_form(row: AgentRow) -> dict[str, Any]:
    """The row's figures as a checkpoint keeps them (beside the conversation's counters)."""
    return {
        "status": row.status.value,
        "api_turns": row.turn,
        "searches": row.searches,
        "retries": row.retries,
        "cost_usd": row.cost_usd,
        "unconfirmed_usd": row.unconfirmed_usd,
        "unconfirmed_attempts": row.unconfirmed_attempts,
        "unconfirmed_searches": row.unconfirmed_searches,
    }


def saved_status(saved: Mapping[str, Any]) -> AgentStatus:
    """The status a checkpoint's figures hold (pending when they hold none)."""
    return AgentStatus(saved.get("status", AgentStatus.PENDING))


def restored(
    agent_id: str,
    layer: int,
    title: str,
    saved: Mapping[str, Any],
    *,
    cost_usd: float,
    searches: int,
    unconfirmed: Unconfirmed = ALL_BILLED,
    report_path: str | None = None,
) -> AgentRow:
    """An agent's row at the start of a new attempt of its run, from its checkpoint's figures.

    Dollars and searches (and their unconfirmed part) come from the restored ledger (what was
    charged, including a call that ended after the agent's last checkpoint), the rest from the
    checkpoint. An agent that ended
    stays ended (with ``report_path``, its report), except one a cap stopped (the cap may have been
    raised); any other starts pending.
    """
    status = saved_status(saved)
    if not status.is_final or status is AgentStatus.BUDGET_EXHAUSTED:
        status = AgentStatus.PENDING
    return AgentRow(
        agent_id=agent_id,
        layer=layer,
        title=title,
        status=status,
        turn=int(saved.get("api_turns", 0)),
        searches=searches,
        cost_usd=cost_usd,
        retries=int(saved.get("retries", 0)),
        report_path=report_path if status.is_final else None,
        unconfirmed_usd=unconfirmed.usd,
        unconfirmed_attempts=unconfirmed.attempts,
        unconfirmed_searches=unconfirmed.searches,
    )


# --- what a request from a front end does to a row ----------------------------------------------


def pause_event(row: AgentRow) -> type[ev.AgentPaused] | type[ev.AgentPausing] | None:
    """The event a pause request leads to: a pending agent is paused at once (it will start paused),
    a working one first finishes the call in flight (pausing); ``None``: nothing to pause."""
    if row.status is AgentStatus.PENDING:
        return ev.AgentPaused
    if row.status in (AgentStatus.RUNNING, AgentStatus.WAITING_FOR_BUDGET):
        return ev.AgentPausing
    return None


def can_resume(row: AgentRow) -> bool:
    return row.status in (AgentStatus.PAUSING, AgentStatus.PAUSED)


def can_kill(row: AgentRow) -> bool:
    return not row.status.is_final


def _spent(row: AgentRow, usd: float, searches: int, *, billed: bool = True) -> AgentRow:
    """Dollars and searches charged to the agent: a completed call's, a failed attempt's or a
    compaction's. Every charge passes here; one that is not ``billed`` (a bound for an attempt
    whose usage never arrived) also counts as unconfirmed."""
    row = replace(row, cost_usd=row.cost_usd + usd, searches=row.searches + searches)
    if billed:
        return row
    return replace(
        row,
        unconfirmed_usd=row.unconfirmed_usd + usd,
        unconfirmed_attempts=row.unconfirmed_attempts + 1,
        unconfirmed_searches=row.unconfirmed_searches + searches,
    )


IN_BATCH = "in batch"
"""What an agent's row says (its ``note``) while its request waits in a Message Batch."""


def _unbatched(row: AgentRow) -> AgentRow:
    """The row once its batched request has its answer (or failed)."""
    return replace(row, note=None) if row.note and row.note.startswith(IN_BATCH) else row


def step(row: AgentRow, event: ev.Event) -> AgentRow:
    """The row ``event`` leaves behind; ``row`` itself when the event changes nothing of it.

    ``event`` is about ``row``'s agent (the caller routes by ``agent_id``); run-level events
    change no row.
    """
    match event:
        case ev.TextStreamed():  # the hot path first: the stream changes no figure
            return row
        case ev.AgentStarted():
            return replace(
                row,
                status=AgentStatus.RUNNING,
                title=event.title or row.title,
                turn=max(row.turn, event.resumed_from_turn),
                started=True,
                note=None,
            )
        case ev.TurnCompleted():
            row = _spent(_unbatched(row), event.cost_usd, event.usage.web_search_requests)
            return replace(row, turn=max(row.turn, event.turn or 0))
        case ev.AttemptCharged():  # a failed attempt completes no turn
            row = _unbatched(row)
            return _spent(row, event.cost_usd, event.usage.web_search_requests, billed=event.billed)
        case ev.AgentBatched():
            return replace(row, note=f"{IN_BATCH} {event.batch_id}")
        case ev.ContextCompacted():  # a summarising call: it searches nothing
            return _spent(row, event.cost_usd, 0)
        case ev.RetryScheduled():
            return replace(_unbatched(row), retries=row.retries + 1)
        case ev.AgentPausing():
            return replace(row, status=AgentStatus.PAUSING)
        case ev.AgentPaused():
            return replace(row, status=AgentStatus.PAUSED)
        case ev.AgentResumed():
            return replace(row, status=AgentStatus.RUNNING if row.started else AgentStatus.PENDING)
        case ev.AgentBudgetWaitStarted():
            return replace(row, status=AgentStatus.WAITING_FOR_BUDGET, note=event.message or event.cap)
        case ev.AgentBudgetWaitEnded():
            return replace(row, status=AgentStatus.RUNNING, note=None)
        case ev.AgentInterrupted():
            return replace(row, status=AgentStatus.INTERRUPTED, note=None)
        case ev.AgentKilled() | ev.AgentFailed() if row.note and row.note.startswith(IN_BATCH):
            return step(replace(row, note=None), event)
        case ev.AgentKilled():
            return replace(row, status=AgentStatus.KILLED, report_path=event.report_path or row.report_path)
        case ev.AgentSkipped():
            return replace(row, status=AgentStatus.SKIPPED, error=event.reason, note=None)
        case ev.AgentFailed():
            return replace(
                row,
                status=AgentStatus.FAILED,
                error=event.error,
                report_path=event.report_path or row.report_path,
            )
        case ev.AgentFinished():
            status = event.status if event.status in REPORT_STATUSES else AgentStatus.COMPLETED
            return replace(
                row,
                status=status,
                report_path=event.report_path or row.report_path,
                turn=max(row.turn, event.turns),
                note=None,
            )
        case (
            ev.RunStarted()
            | ev.LayerStarted()
            | ev.LayerFinished()
            | ev.RunFinished()
            | ev.AttemptAbandoned()
            | ev.SearchIssued()
            | ev.SearchResultsReceived()
            | ev.CitationReceived()
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
            return row
        case _:
            assert_never(event)
