"""One agent's life in a run: the handle that owns its task, its control flags and its status.

The orchestrator runs each layer as a task group of supervisors, one per agent; a supervisor
drives its agent through a handle. The handle is the only place an agent's status changes, and
every change is published as an event, so the run's :class:`~core.view.RunView` (and with it
``summary.json``, the app and the headless display) never disagrees with it.

Kill, stop and abort are outcomes read at the task boundary: ``kill`` cancels the agent's own
task and the handle turns that cancellation into a killed result; a stop or an abort cancels the
supervisor, which cancels the agent's task, waits for it to end, marks the agent interrupted and
lets the cancellation propagate. No cancellation is swallowed inside the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from core import events as ev
from core.config.model import ResolvedAgent
from core.control import AgentStatus
from core.engine.session import SessionState

Publish = Callable[[ev.Event], None]


class AgentHandle:
    def __init__(
        self, agent: ResolvedAgent, run_id: str, publish: Publish, state: SessionState | None
    ) -> None:
        self.agent = agent
        self.run_id = run_id
        self._publish = publish
        self.state = state
        self.report_path: str | None = None
        self.error: str | None = None
        saved = AgentStatus(state.status) if state is not None else AgentStatus.PENDING
        # An agent stopped by a cap continues when the run is resumed (with a raised cap).
        resumable = not saved.is_final or saved is AgentStatus.BUDGET_EXHAUSTED
        self.status = AgentStatus.PENDING if resumable else saved
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._kill_requested = False
        self._task: asyncio.Task[Any] | None = None  # the agent's session, while it runs
        self.supervisor: asyncio.Task[None] | None = None  # set by the orchestrator's task group

    @property
    def id(self) -> str:
        return self.agent.id

    @property
    def kill_requested(self) -> bool:
        return self._kill_requested

    def publish(self, event_type: type[ev.Event], **fields: Any) -> None:
        turn = self.state.api_turns if self.state is not None else 0
        self._publish(
            event_type(
                run_id=self.run_id, agent_id=self.agent.id, layer=self.agent.layer, turn=turn, **fields
            )
        )

    def _become(self, new: AgentStatus, event_type: type[ev.Event] | None = None, **fields: Any) -> None:
        self.status = new
        if event_type is not None:
            self.publish(event_type, **fields)

    # --- control (called by front ends through the orchestrator) -------------------------------

    def pause(self) -> bool:
        """No new API call starts until :meth:`resume`; the call in flight finishes its turn."""
        if self.status is AgentStatus.PENDING:
            self._resumed.clear()
            self._become(AgentStatus.PAUSED, ev.AgentPaused)
            return True
        if self.status in (AgentStatus.RUNNING, AgentStatus.WAITING_FOR_BUDGET):
            self._resumed.clear()
            self._become(AgentStatus.PAUSING, ev.AgentPausing)
            return True
        return False

    def resume(self) -> bool:
        if self.status not in (AgentStatus.PAUSING, AgentStatus.PAUSED):
            return False
        self._resumed.set()
        started = self._task is not None
        self._become(AgentStatus.RUNNING if started else AgentStatus.PENDING, ev.AgentResumed)
        return True

    def kill(self) -> bool:
        """End the agent: a running call is cancelled (a partial report is kept); a pending one never runs."""
        if self.status.is_final or self._kill_requested:
            return False
        self._kill_requested = True
        self._resumed.set()
        if self._task is not None:
            self._task.cancel()
        else:
            self._become(AgentStatus.KILLED, ev.AgentKilled)
        return True

    def interrupt(self) -> None:
        """Stop the agent for this attempt (the run stops); it continues when the run is resumed."""
        if self.supervisor is not None and not self.supervisor.done():
            self.supervisor.cancel()

    # --- the session's side --------------------------------------------------------------------

    async def at_turn_boundary(self) -> None:
        """Called by the session before each API call: a requested pause takes hold here."""
        if self._resumed.is_set():
            return
        self._become(AgentStatus.PAUSED, ev.AgentPaused)
        await self._resumed.wait()

    async def wait_until_unpaused(self) -> None:
        """A pending agent paused before it started holds no concurrency slot while it waits."""
        await self._resumed.wait()

    async def drive(self, body: Coroutine[Any, Any, Any], *, title: str) -> asyncio.Task[Any]:
        """Run the session as the agent's own task and return it once it has ended, however.

        A cancellation of the caller (the run stops) cancels the session, waits for it to end
        (a checkpoint being written lands first), marks the agent interrupted and propagates.
        """
        self._become(
            AgentStatus.RUNNING,
            ev.AgentStarted,
            title=title,
            resumed_from_turn=self.state.api_turns if self.state is not None else 0,
        )
        if not self._resumed.is_set():
            self._become(AgentStatus.PAUSING, ev.AgentPausing)  # paused while it took its slot
        task = asyncio.get_running_loop().create_task(body, name=f"agent:{self.agent.id}")
        self._task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await _until_done(task)
            self.mark_interrupted()
            raise
        return task

    def mark_interrupted(self) -> None:
        """The agent did not reach its end in this attempt; a resume continues it."""
        if not self.status.is_final and self.status is not AgentStatus.INTERRUPTED:
            self._become(AgentStatus.INTERRUPTED, ev.AgentInterrupted)

    def waiting_for_budget(self, cap: str, message: str) -> None:
        self._become(AgentStatus.WAITING_FOR_BUDGET, ev.AgentBudgetWaitStarted, cap=cap, message=message)

    def budget_wait_over(self) -> None:
        if self.status is AgentStatus.WAITING_FOR_BUDGET:
            self._become(AgentStatus.RUNNING, ev.AgentBudgetWaitEnded)

    # --- endings (the orchestrator calls one when the agent's report is written) ----------------

    def finished(self, status: AgentStatus, report_path: str, *, cost_usd: float, searches: int) -> None:
        self.report_path = report_path
        turns = self.state.api_turns if self.state is not None else 0
        self._become(
            status,
            ev.AgentFinished,
            status=status.value,
            report_path=report_path,
            turns=turns,
            searches=searches,
            cost_usd=cost_usd,
        )

    def failed(self, error: str, report_path: str) -> None:
        self.report_path, self.error = report_path, error
        self._become(AgentStatus.FAILED, ev.AgentFailed, error=error, report_path=report_path)

    def killed(self, report_path: str) -> None:
        self.report_path = report_path
        self._become(AgentStatus.KILLED, ev.AgentKilled, report_path=report_path)


async def _until_done(task: asyncio.Task[Any]) -> None:
    """Wait for a cancelled task to end; a second cancellation of the waiter is re-applied after."""
    cancelled_again = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled_again = True
            task.cancel()
    if cancelled_again:
        raise asyncio.CancelledError


async def uncancellable(body: Coroutine[Any, Any, None]) -> None:
    """Run ``body`` to its end even if the caller is cancelled meanwhile; then let that propagate.

    For the short steps that make an agent's record consistent (its report and final checkpoint):
    a stop arriving mid-way waits for them instead of leaving a report without its checkpoint.
    """
    task = asyncio.get_running_loop().create_task(body)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await _until_done(task)
        task.result()
        raise
