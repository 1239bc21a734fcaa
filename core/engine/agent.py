"""One agent's life in a run: the handle that owns its task, its control flags and its row.

The orchestrator runs each layer as a task group of supervisors, one per agent; a supervisor
drives its agent through a handle. Every event of the agent passes through :meth:`AgentHandle.apply`,
which moves the agent's :class:`~core.lifecycle.AgentRow` with :func:`~core.lifecycle.step` (the
function every view of the run folds with) and publishes it: the handle's status and figures, the
run's :class:`~core.view.RunView` (and with it ``summary.json``, the app and the headless display)
and the checkpoints never disagree.

Kill, stop and abort are outcomes read at the task boundary: ``kill`` cancels the agent's own
task and the handle turns that cancellation into a killed result; a stop or an abort cancels the
supervisor, which cancels the agent's task, waits for it to end, marks the agent interrupted and
lets the cancellation propagate. No cancellation is swallowed inside the session.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from core import correlation
from core import events as ev
from core.config.model import ResolvedAgent
from core.engine.session import SessionState
from core.lifecycle import AgentRow, can_kill, can_resume, pause_event, step
from core.status import AgentStatus

Publish = Callable[[ev.Event], None]


@dataclass(frozen=True, slots=True)
class SavedAgent:
    """An agent as its latest checkpoint left it: the conversation to continue, and its row's
    figures (:func:`core.lifecycle.saved_form`)."""

    state: SessionState
    figures: Mapping[str, Any]


class AgentHandle:
    def __init__(
        self, agent: ResolvedAgent, run_id: str, publish: Publish, state: SessionState | None, row: AgentRow
    ) -> None:
        self.agent = agent
        self.run_id = run_id
        self._publish = publish
        self.state = state
        self.row = row  # moved only by apply()
        self.report_path: str | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._kill_requested = False
        self._kill_after_call = False  # killed once the call in flight has finished and been saved
        self._draining = False  # the run stops cleanly: no new call starts
        self._in_call = False  # from just before a call is sent until the agent's next turn boundary
        self._task: asyncio.Task[Any] | None = None  # the agent's session, while it runs
        self.supervisor: asyncio.Task[None] | None = None  # set by the orchestrator's task group
        self.on_call_over: Callable[[], None] | None = None  # told when the agent has no call in flight

    @property
    def id(self) -> str:
        return self.agent.id

    @property
    def status(self) -> AgentStatus:
        return self.row.status

    @property
    def kill_requested(self) -> bool:
        return self._kill_requested

    @property
    def in_call(self) -> bool:
        """A call of the agent may be in flight, or its answer not saved yet: stopping it now would
        throw away a call the API bills (it is charged its worst case, and a resume buys it again)."""
        task = self._task
        return self._in_call and task is not None and not task.done()

    def apply(self, event: ev.Event) -> None:
        """The one way the agent's row changes: ``event`` (about this agent) moves it through the
        lifecycle, then goes out on the bus. The session's events come here too."""
        self.row = step(self.row, event)
        self._publish(event)

    def event(self, event_type: type[ev.Event], **fields: Any) -> ev.Event:
        """An event of this agent, stamped with its run, layer and completed turns."""
        return event_type(
            run_id=self.run_id, agent_id=self.agent.id, layer=self.agent.layer, turn=self.row.turn, **fields
        )

    def publish(self, event_type: type[ev.Event], **fields: Any) -> None:
        self.apply(self.event(event_type, **fields))

    # --- control (called by front ends through the orchestrator) -------------------------------

    def pause(self) -> bool:
        """No new API call starts until :meth:`resume`; the call in flight finishes its turn."""
        event_type = pause_event(self.row)
        if event_type is None:
            return False
        self._resumed.clear()
        self.publish(event_type)
        return True

    def resume(self) -> bool:
        if not can_resume(self.row):
            return False
        self._resumed.set()
        self.publish(ev.AgentResumed)  # running again if it had started, else pending
        return True

    def kill(self, *, now: bool = True) -> bool:
        """End the agent; a partial report is kept, and a pending one never runs. ``now``: a call in
        flight is cancelled (and charged its worst case); otherwise it finishes its turn, is saved,
        and the agent ends before its next call."""
        if not can_kill(self.row) or self._kill_requested:
            return False
        if not now and self.in_call:
            if self._kill_after_call:
                return False
            self._kill_after_call = True
            return True
        self._kill_requested = True
        self._resumed.set()
        if self._task is not None:
            self._task.cancel()
        else:
            self.publish(ev.AgentKilled)
        return True

    def drain(self) -> None:
        """The run stops cleanly: no new call starts; the call in flight finishes its turn and is saved."""
        self._draining = True

    def interrupt(self) -> None:
        """Stop the agent for this attempt (the run stops); it continues when the run is resumed."""
        if self.supervisor is not None and not self.supervisor.done():
            self.supervisor.cancel()

    # --- the session's side --------------------------------------------------------------------

    async def at_turn_boundary(self) -> None:
        """Called by the session before each API call: a requested pause takes hold here."""
        await self._hold_if_stopping()
        if self._resumed.is_set():
            return
        self.publish(ev.AgentPaused)
        await self._resumed.wait()

    async def before_call(self) -> None:
        """Called by the session just before each attempt is sent: a clean stop or a kill after the
        call holds here; otherwise the agent has a call in flight until its next turn boundary (its
        answer is saved by then) or until the attempt fails (:meth:`call_failed`)."""
        await self._hold_if_stopping()
        self._in_call = True

    def call_failed(self) -> None:
        """An attempt failed and a retry waits: no call is in flight (its charge is saved by the stop)."""
        self._call_over()

    def _call_over(self) -> None:
        if self._in_call:
            self._in_call = False
            if self.on_call_over is not None:
                self.on_call_over()

    async def _hold_if_stopping(self) -> None:
        """No call is in flight here and every answer is saved: a kill after the call ends the agent
        (cancelling its own task), and a clean stop holds it until the run cancels it."""
        self._call_over()
        if self._kill_after_call:
            self.kill()
        if self._kill_requested or self._draining:
            await asyncio.get_running_loop().create_future()  # never set: ends by cancellation

    async def wait_until_unpaused(self) -> None:
        """A pending agent paused before it started holds no concurrency slot while it waits."""
        await self._resumed.wait()

    async def drive(self, body: Coroutine[Any, Any, Any], *, title: str) -> asyncio.Task[Any]:
        """Run the session as the agent's own task and return it once it has ended, however.

        A cancellation of the caller (the run stops) cancels the session, waits for it to end
        (a checkpoint being written lands first), marks the agent interrupted and propagates.
        """
        self.publish(ev.AgentStarted, title=title, resumed_from_turn=self.row.turn)
        if not self._resumed.is_set():
            self.publish(ev.AgentPausing)  # paused while it took its slot
        ids = contextvars.copy_context()  # its log records name the run and the agent (core.correlation)
        ids.run(correlation.run_id.set, self.run_id)
        ids.run(correlation.agent_id.set, self.agent.id)
        task = asyncio.get_running_loop().create_task(body, name=f"agent:{self.agent.id}", context=ids)
        self._task = task
        task.add_done_callback(lambda _: self._call_over())
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
            self.publish(ev.AgentInterrupted)

    def waiting_for_budget(self, cap: str, message: str) -> None:
        self.publish(ev.AgentBudgetWaitStarted, cap=cap, message=message)

    def budget_wait_over(self) -> None:
        if self.status is AgentStatus.WAITING_FOR_BUDGET:
            self.publish(ev.AgentBudgetWaitEnded)


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
