"""Layers in order, the agents of a layer concurrently; the control API a front end drives.

The orchestrator owns the run's shared pieces (client, ledger, retry gate, checkpoint store,
event bus) and each agent's task. Control flows down through :meth:`pause`, :meth:`resume`,
:meth:`kill` and :meth:`stop`; everything it learns goes up as events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from anthropic import AsyncAnthropic

from core.api.retry import NonRetryableError, RequestGate, RetriesExhausted, RetryPolicy
from core.api.streaming import AgentContext
from core.budget.ledger import BudgetLedger
from core.config.model import ResearchConfig, ResolvedAgent
from core.control import AgentStatus, RunOutcome, RunStatus
from core.engine.agent_control import AgentControl
from core.engine.session import AgentSession, SessionResult, SessionState
from core.events import (
    AgentFailed,
    AgentFinished,
    AgentKilled,
    AgentPaused,
    AgentPausing,
    AgentResumed,
    AgentStarted,
    CheckpointSaved,
    DiskErrorRaised,
    Event,
    EventBus,
    LayerFinished,
    LayerStarted,
    RunFinished,
    RunStarted,
)
from core.persistence.atomic import DiskError, write_atomic_async
from core.persistence.checkpoints import CheckpointStore
from core.persistence.rundir import RunDir
from core.persistence.summary import SummaryWriter
from core.reports.render import combine_reports


class Orchestrator:
    """Runs one research program in one run directory (implements :class:`core.control.RunControl`)."""

    def __init__(
        self,
        *,
        config: ResearchConfig,
        run_dir: RunDir,
        client: AsyncAnthropic,
        ledger: BudgetLedger,
        bus: EventBus | None = None,
        store: CheckpointStore | None = None,
        restored: dict[str, SessionState] | None = None,
        parent: dict[str, str] | None = None,
        simulated: bool = False,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.run_dir_ref = run_dir
        self.run_dir: Path = run_dir.path
        self.run_id = run_dir.run_id
        self.client = client
        self.ledger = ledger
        self.bus = bus or EventBus()
        self.store = store
        self.parent = parent
        self.simulated = simulated
        self._on_close = on_close
        self.agents = config.agents()
        self.states: dict[str, SessionState] = dict(restored or {})
        self.statuses: dict[str, AgentStatus] = {
            a.id: AgentStatus(self.states[a.id].status) if a.id in self.states else AgentStatus.PENDING
            for a in self.agents
        }
        for agent_id, status in self.statuses.items():
            # An agent stopped by a cap continues when the run is resumed (with a raised cap).
            if not status.is_final or status is AgentStatus.BUDGET_EXHAUSTED:
                self.statuses[agent_id] = AgentStatus.PENDING
        self.reports: dict[str, Path] = {}
        self.errors: dict[str, str] = {}
        self.controls = {a.id: AgentControl() for a in self.agents}
        self._tasks: dict[str, asyncio.Task[SessionResult]] = {}
        self._stopping = False
        self._abort: str | None = None
        self.policy = RetryPolicy(config.execution_settings.retry)
        self.gate = RequestGate(config.execution_settings.max_concurrent_agents)
        self.started_at = time.time()
        self.current_layer = 0
        self.summary = SummaryWriter(self)
        self.bus.listen(self._track_pauses)
        for agent in self.agents:
            path = run_dir.reports_dir / f"{agent.id}.md"
            if self.statuses[agent.id].is_final and path.exists():
                self.reports[agent.id] = path

    # --- control API ------------------------------------------------------------------------

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self.statuses[agent_id]

    def pause(self, agent_id: str) -> bool:
        status = self.statuses.get(agent_id)
        if status not in (AgentStatus.RUNNING, AgentStatus.PENDING):
            return False
        self.controls[agent_id].pause()
        if status is AgentStatus.RUNNING:
            self.statuses[agent_id] = AgentStatus.PAUSING
            self._publish_agent(AgentPausing, agent_id)
        else:
            self.statuses[agent_id] = AgentStatus.PAUSED
        return True

    def resume(self, agent_id: str) -> bool:
        status = self.statuses.get(agent_id)
        if status not in (AgentStatus.PAUSING, AgentStatus.PAUSED):
            return False
        self.controls[agent_id].resume()
        if agent_id in self._tasks:
            self.statuses[agent_id] = AgentStatus.RUNNING
            if status is AgentStatus.PAUSING:
                self._publish_agent(AgentResumed, agent_id)
        else:
            self.statuses[agent_id] = AgentStatus.PENDING
        return True

    def kill(self, agent_id: str) -> bool:
        status = self.statuses.get(agent_id)
        if status is None or status.is_final:
            return False
        control = self.controls[agent_id]
        control.killed = True
        control.resume()
        task = self._tasks.get(agent_id)
        if task is not None and not task.done():
            task.cancel()
        else:
            self.statuses[agent_id] = AgentStatus.KILLED
            self._publish_agent(AgentKilled, agent_id)
        return True

    def stop(self) -> None:
        """Stop the whole run now: in-flight calls are cancelled; every completed turn is saved."""
        self._stopping = True
        for task in self._tasks.values():
            if not task.done():
                task.cancel()

    def _track_pauses(self, event: Event) -> None:
        """Sessions announce when a pause takes hold (at a turn boundary) and when it lifts."""
        if event.agent_id is None or event.agent_id not in self.statuses:
            return
        if isinstance(event, AgentPaused) and not self.statuses[event.agent_id].is_final:
            self.statuses[event.agent_id] = AgentStatus.PAUSED
        elif isinstance(event, AgentResumed) and self.statuses[event.agent_id] is AgentStatus.PAUSED:
            self.statuses[event.agent_id] = AgentStatus.RUNNING

    def _publish_agent(self, event_type: type[Any], agent_id: str, **fields: Any) -> None:
        agent = self.config.agent(agent_id)
        state = self.states.get(agent_id)
        self.bus.publish(
            event_type(
                run_id=self.run_id,
                agent_id=agent_id,
                layer=agent.layer,
                turn=state.api_turns if state else 0,
                **fields,
            )
        )

    # --- the run ----------------------------------------------------------------------------

    async def run(self) -> RunOutcome:
        self.bus.publish(
            RunStarted(
                run_id=self.run_id,
                program=self.config.program.name,
                run_dir=str(self.run_dir),
                agents=tuple((a.id, a.layer, a.title) for a in self.agents),
                statuses={agent_id: status.value for agent_id, status in self.statuses.items()},
                parent=self.parent,
                resumed=bool(self.states),
                simulated=self.simulated,
            )
        )
        self.bus.publish(self.ledger.to_event(self.run_id))
        status = RunStatus.COMPLETED
        message: str | None = None
        try:
            await self._write_missing_reports()
            await self.summary.write(RunStatus.RUNNING)
            for number in range(1, len(self.config.layers) + 1):
                self.current_layer = number
                await self._run_layer(number)
                if self._stopping or self._abort:
                    break
            status, message = self._final_status()
            if (status is not RunStatus.INTERRUPTED and status is not RunStatus.FAILED) or self.reports:
                await self._write_final_report()
        except DiskError as error:
            status, message = RunStatus.FAILED, str(error)
            self.bus.publish(DiskErrorRaised(run_id=self.run_id, path=str(error.path), message=str(error)))
        except asyncio.CancelledError:
            status, message = (
                RunStatus.INTERRUPTED,
                f"interrupted: state saved; resume with `research-orchestrator resume {self.run_id}`",
            )
            self.stop()
        finally:
            await self._cancel_all()
        with contextlib.suppress(DiskError):
            await self.summary.write(status)
        outcome = RunOutcome(
            status=status, run_dir=self.run_dir, cost_usd=self.ledger.snapshot().spent_usd, message=message
        )
        self.bus.publish(
            RunFinished(
                run_id=self.run_id,
                status=status.value,
                cost_usd=outcome.cost_usd,
                message=message,
                report_path=str(self.run_dir_ref.final_report_path)
                if self.run_dir_ref.final_report_path.exists()
                else None,
            )
        )
        await self.bus.close()
        if self._on_close is not None:
            await self._on_close()
        return outcome

    def _final_status(self) -> tuple[RunStatus, str | None]:
        if self._abort:
            return RunStatus.FAILED, self._abort
        if self._stopping:
            return (
                RunStatus.INTERRUPTED,
                f"stopped: state saved; resume with `research-orchestrator resume {self.run_id}`",
            )
        statuses = set(self.statuses.values())
        if AgentStatus.BUDGET_EXHAUSTED in statuses:
            return RunStatus.BUDGET_EXHAUSTED, "a budget cap was reached: partial results saved"
        if AgentStatus.FAILED in statuses:
            failed = [a for a, s in self.statuses.items() if s is AgentStatus.FAILED]
            return RunStatus.FAILED, f"agents failed: {', '.join(failed)}"
        if AgentStatus.KILLED in statuses and self.statuses[self.agents[-1].id] is AgentStatus.KILLED:
            return RunStatus.KILLED, "the final agent was killed"
        return RunStatus.COMPLETED, None

    async def _run_layer(self, number: int) -> None:
        members = [a for a in self.agents if a.layer == number]
        todo = [a for a in members if not self.statuses[a.id].is_final]
        self.bus.publish(
            LayerStarted(run_id=self.run_id, layer=number, agent_ids=tuple(a.id for a in members))
        )
        limit = asyncio.Semaphore(self.config.execution_settings.max_concurrent_agents)

        async def guarded(agent: ResolvedAgent) -> None:
            async with limit:
                if self._stopping or self._abort:
                    return
                await self._run_agent(agent)

        await asyncio.gather(*(guarded(a) for a in todo))
        self.bus.publish(
            LayerFinished(
                run_id=self.run_id,
                layer=number,
                statuses={a.id: self.statuses[a.id].value for a in members},
            )
        )

    async def _write_missing_reports(self) -> None:
        """A forked run starts without the report files of agents finished before the fork."""
        for agent in self.agents:
            state = self.states.get(agent.id)
            if state is None or not self.statuses[agent.id].is_final or agent.id in self.reports:
                continue
            session = self._session(agent, state)
            partial = self.statuses[agent.id] is not AgentStatus.COMPLETED
            path = self.run_dir_ref.reports_dir / f"{agent.id}.md"
            await write_atomic_async(path, session.report(partial=partial).encode("utf-8"))
            self.reports[agent.id] = path

    def _session(self, agent: ResolvedAgent, state: SessionState | None) -> AgentSession:
        return AgentSession(
            agent=agent,
            config=self.config,
            client=self.client,
            context=AgentContext(self.bus, self.run_id, agent.id, agent.layer),
            ledger=self.ledger,
            policy=self.policy,
            gate=self.gate,
            control=self.controls[agent.id],
            prior_reports=self._prior_reports(agent),
            save=self._save_checkpoint,
            state=state,
            context_window=self.ledger.prices.context_window(agent.model),
        )

    def _prior_reports(self, agent: ResolvedAgent) -> dict[str, str]:
        reports = {}
        for agent_id in agent.reads:
            path = self.reports.get(agent_id)
            if path is not None and path.exists():
                reports[agent_id] = path.read_text(encoding="utf-8")
        return reports

    async def _run_agent(self, agent: ResolvedAgent) -> None:
        control = self.controls[agent.id]
        if control.killed:
            return
        session = self._session(agent, self.states.get(agent.id))
        context = session.context
        self.states[agent.id] = session.state
        if self.statuses[agent.id] is not AgentStatus.PAUSED:
            self.statuses[agent.id] = AgentStatus.RUNNING
        context.publish(
            AgentStarted,
            turn=session.state.api_turns,
            title=agent.title,
            resumed_from_turn=session.state.api_turns,
        )
        task = asyncio.get_running_loop().create_task(self._drive(session), name=f"agent:{agent.id}")
        self._tasks[agent.id] = task
        try:
            result = await task
        except asyncio.CancelledError:
            if self._stopping:
                return  # interrupted: the last completed turn is saved; the agent resumes later
            raise
        finally:
            self._tasks.pop(agent.id, None)
        await self._conclude(agent, session, result)

    async def _drive(self, session: AgentSession) -> SessionResult:
        """Run a session, turning API errors into a failed agent (or an aborted run for a 401)."""
        try:
            return await session.run()
        except (NonRetryableError, RetriesExhausted) as error:
            info = error.info
            if info.fatal_for_run:
                self._abort = info.message
                self.stop()
            return session.fail(info)

    async def _conclude(self, agent: ResolvedAgent, session: AgentSession, result: SessionResult) -> None:
        path = self.run_dir_ref.reports_dir / f"{agent.id}.md"
        await write_atomic_async(path, result.report.encode("utf-8"))
        self.reports[agent.id] = path
        self.statuses[agent.id] = result.status
        state = result.state
        await self._save_checkpoint(agent, state)
        if result.status is AgentStatus.KILLED:
            self._publish_agent(AgentKilled, agent.id, report_path=str(path))
        elif result.status is AgentStatus.FAILED:
            self.errors[agent.id] = result.error or "failed"
            self._publish_agent(AgentFailed, agent.id, error=result.error or "failed", report_path=str(path))
        else:
            self._publish_agent(
                AgentFinished,
                agent.id,
                status=result.status.value,
                report_path=str(path),
                turns=state.api_turns,
                searches=state.searches,
                cost_usd=state.cost_usd,
            )
        await self.summary.write(RunStatus.RUNNING)

    async def _save_checkpoint(self, agent: ResolvedAgent, state: SessionState) -> None:
        if self.store is None or not self.config.execution_settings.checkpoints.enabled:
            await self.summary.write(RunStatus.RUNNING, throttle=True)
            return
        snapshot = self.ledger.snapshot()
        info = await self.store.save(
            agent_id=agent.id,
            layer=agent.layer,
            turn=state.api_turns,
            messages=state.messages,
            agent_state=state.counters(),
            ledger_state=self.ledger.to_state(),
            cost_usd=snapshot.spent_usd,
            tokens=snapshot.tokens,
            agent_status=state.status,
        )
        self.bus.publish(
            CheckpointSaved(
                run_id=self.run_id,
                agent_id=agent.id,
                layer=agent.layer,
                turn=state.api_turns,
                checkpoint_id=info.id,
                bytes_written=info.size_bytes,
            )
        )
        await self.summary.write(RunStatus.RUNNING, throttle=True)

    async def _write_final_report(self) -> None:
        last_layer = len(self.config.layers)
        finals = {
            a.id: self.reports[a.id].read_text(encoding="utf-8")
            for a in self.agents
            if a.layer == last_layer and a.id in self.reports
        }
        if finals:
            text = combine_reports(self.config.program.name, self.config.program.question, finals)
            await write_atomic_async(self.run_dir_ref.final_report_path, text.encode("utf-8"))

    async def _cancel_all(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
