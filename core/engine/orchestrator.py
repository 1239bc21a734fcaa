"""Layers in order, the agents of a layer concurrently; the control API a front end drives.

The orchestrator owns the run's shared pieces (client, ledger, retry gate, checkpoint store,
event bus) and one :class:`~core.engine.agent.AgentHandle` per agent. Each layer is an
:class:`asyncio.TaskGroup` of agent supervisors, so when :meth:`Orchestrator.run` returns, for
any reason, no agent task is alive and nothing is written after ``run_finished``. Control flows
down through :meth:`pause`, :meth:`resume`, :meth:`kill` and :meth:`stop`; everything it learns
goes up as events, which its own :class:`~core.view.RunView` folds into ``summary.json``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from anthropic import AsyncAnthropic

from core.api.retry import NonRetryableError, RequestGate, RetriesExhausted, RetryPolicy
from core.api.streaming import AgentContext
from core.api.usage import TokenUsage
from core.budget.ledger import BudgetLedger
from core.config.model import ResearchConfig, ResolvedAgent
from core.control import AgentStatus, RunOutcome, RunStatus
from core.engine.agent import AgentHandle, uncancellable
from core.engine.session import AgentSession, SessionResult, SessionState
from core.events import (
    AgentSeed,
    AttemptCharged,
    CheckpointSaved,
    DiskErrorRaised,
    EventBus,
    LayerFinished,
    LayerStarted,
    RunFinished,
    RunStarted,
)
from core.persistence.atomic import DiskError, ensure_private_dir, write_atomic_async
from core.persistence.checkpoints import CheckpointStore
from core.persistence.inflight import InFlightLog
from core.persistence.rundir import RunDir
from core.persistence.summary import RunFacts, SummaryWriter, build_summary
from core.reports.document import ReportFacts, final_document
from core.view import RunView

log = logging.getLogger(__name__)


class RunAborted(Exception):
    """An agent's error ends the whole run (a rejected API key): its siblings are interrupted."""


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
        started_at: float | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        serve: Callable[[Orchestrator], AbstractAsyncContextManager[object]] | None = None,
    ) -> None:
        self.config = config
        self.run_dir_ref = run_dir
        self.run_dir: Path = run_dir.path
        self.run_id = run_dir.run_id
        self.client = client
        self.ledger = ledger
        self.bus = bus or EventBus()
        self.store = store
        checkpoints = store is not None and config.execution_settings.checkpoints.enabled
        self.inflight = InFlightLog(run_dir.inflight_dir) if checkpoints else None
        self.parent = parent
        self.simulated = simulated
        self.resumed = bool(restored)
        self.started_at = started_at or time.time()
        self._on_close = on_close
        self._serve = serve  # what the owner offers while it runs (the control channel)
        self.agents = config.agents()
        restored = restored or {}
        self.handles = {
            a.id: AgentHandle(a, self.run_id, self.bus.publish, restored.get(a.id)) for a in self.agents
        }
        self.view = RunView()
        self.bus.listen(self.view.apply, name="run view")  # first: summary.json reads it
        self._stopping = False
        self._failure: str | None = None  # set by abort(): the run stops as failed
        self.policy = RetryPolicy(config.execution_settings.retry)
        self.gate = RequestGate(config.execution_settings.max_concurrent_agents)
        self.current_layer = 0
        self.summary = SummaryWriter(run_dir, self.view, self._facts)
        for handle in self.handles.values():
            path = run_dir.report_path(handle.id)
            if handle.status.is_final and path.exists():
                handle.report_path = str(path)

    # --- control API ------------------------------------------------------------------------

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self.handles[agent_id].status

    def pause(self, agent_id: str) -> bool:
        handle = self.handles.get(agent_id)
        return handle is not None and handle.pause()

    def resume(self, agent_id: str) -> bool:
        handle = self.handles.get(agent_id)
        return handle is not None and handle.resume()

    def kill(self, agent_id: str) -> bool:
        handle = self.handles.get(agent_id)
        return handle is not None and handle.kill()

    def stop(self) -> None:
        """Stop the whole run now: in-flight calls are cancelled; every completed turn is saved."""
        self._stopping = True
        for handle in self.handles.values():
            handle.interrupt()

    def abort(self, message: str) -> None:
        """Stop the run as failed (exit 4) with ``message``: e.g. the disk filled up, state is saved."""
        self._failure = self._failure or message
        self.stop()

    # --- the run ----------------------------------------------------------------------------

    def _seeds(self) -> dict[str, AgentSeed]:
        """What a resumed or forked run already holds, per agent (dollars and searches as billed)."""
        seeds: dict[str, AgentSeed] = {}
        for handle in self.handles.values():
            usage, cost = self.ledger.agent_usage(handle.id)
            state = handle.state
            if state is None and not cost:
                continue
            seeds[handle.id] = AgentSeed(
                status=handle.status.value,
                turns=state.api_turns if state else 0,
                searches=usage.web_search_requests,
                cost_usd=cost,
                retries=state.retries if state else 0,
                report_path=handle.report_path,
            )
        return seeds

    async def run(self) -> RunOutcome:
        if self._serve is None:
            return await self._run()
        async with self._serve(self):
            return await self._run()

    async def _run(self) -> RunOutcome:
        self.bus.publish(
            RunStarted(
                run_id=self.run_id,
                program=self.config.program.name,
                question=self.config.program.question,
                run_dir=str(self.run_dir),
                agents=tuple((a.id, a.layer, a.title) for a in self.agents),
                seeds=self._seeds(),
                parent=self.parent,
                resumed=self.resumed,
                simulated=self.simulated,
                started_at=self.started_at,
            )
        )
        self.bus.publish(self.ledger.to_event(self.run_id))
        status: RunStatus = RunStatus.FAILED
        message: str | None = "the run ended unexpectedly"
        cancelled = False
        try:
            await asyncio.to_thread(self._ensure_dirs)
            await self._charge_lost_attempts()
            await self._write_missing_reports()
            await self.summary.write(RunStatus.RUNNING)
            status, message = await self._run_layers()
        except asyncio.CancelledError:
            cancelled = True
            status, message = RunStatus.INTERRUPTED, self._interrupted_message("interrupted")
        except DiskError as error:
            status, message = RunStatus.FAILED, self._disk_failed(error)
        except BaseException:
            log.exception("run %s failed", self.run_id)
            raise
        finally:
            await self._finish(status, message)
        if cancelled:
            raise asyncio.CancelledError
        return RunOutcome(
            status=status, run_dir=self.run_dir, cost_usd=self.ledger.spent_usd, message=message
        )

    def _ensure_dirs(self) -> None:
        """The directories the run writes into (a resumed run's may have been removed)."""
        ensure_private_dir(self.run_dir_ref.reports_dir)
        if self.inflight is not None:
            ensure_private_dir(self.inflight.directory)

    async def _charge_lost_attempts(self) -> None:
        """Charge the worst case of every attempt a previous process of this run had in flight when
        it died (written ahead, never closed in the restored ledger: :mod:`core.persistence.inflight`),
        then save the agents' checkpoints, so that the charge is kept and never made twice."""
        if self.inflight is None:
            return
        entries = await asyncio.to_thread(self.inflight.read_all)
        charged: list[tuple[ResolvedAgent, SessionState]] = []
        for agent_id, entry in sorted(entries.items()):
            handle = self.handles.get(agent_id)
            try:
                closed_before = int(entry["closed_before"])
                usage = TokenUsage.from_dict(entry["worst_usage"])
                model = str(entry["model"])
            except (KeyError, TypeError, ValueError):
                log.warning("in-flight record of %s unreadable: not charged", agent_id)
                continue
            if handle is None or self.ledger.closed(agent_id) > closed_before:
                continue  # it ended, and the ledger restored says so
            cost = self.ledger.charge_lost(agent_id, handle.agent.layer, model, usage)
            self.bus.publish(
                AttemptCharged(
                    run_id=self.run_id, agent_id=agent_id, layer=handle.agent.layer, turn=entry.get("turn"),
                    usage=usage, cost_usd=cost, basis="worst_case", outcome="process_ended",
                )
            )  # fmt: skip
            self.bus.publish(self.ledger.to_event(self.run_id))
            log.warning("%s: a call in flight when the run's process ended is charged $%.4f", agent_id, cost)
            if handle.state is not None:
                handle.state.cost_usd += cost
                handle.state.searches += usage.web_search_requests
                charged.append((handle.agent, handle.state))
        for agent, state in charged:
            await self._save_checkpoint(agent, state)

    async def _run_layers(self) -> tuple[RunStatus, str | None]:
        failure: str | None = None
        try:
            for number in range(1, len(self.config.layers) + 1):
                if self._stopping:
                    break
                self.current_layer = number
                await self._run_layer(number)
        except* RunAborted as group:
            failure = str(group.exceptions[0])
        except* DiskError as group:
            error = group.exceptions[0]
            assert isinstance(error, DiskError)
            failure = self._disk_failed(error)
        if failure is not None:
            return RunStatus.FAILED, failure
        status, message = self._final_status()
        if status is not RunStatus.INTERRUPTED or any(h.report_path for h in self.handles.values()):
            await self._write_final_report(status)
        return status, message

    def _disk_failed(self, error: DiskError) -> str:
        self.bus.publish(DiskErrorRaised(run_id=self.run_id, path=str(error.path), message=str(error)))
        return str(error)

    def _interrupted_message(self, verb: str) -> str:
        saved = self.store is not None and self.config.execution_settings.checkpoints.enabled
        if saved:
            return f"{verb}: state saved; resume with `research-orchestrator resume {self.run_id}`"
        return f"{verb}: checkpoints are disabled for this run, so its progress was not saved"

    async def _finish(self, status: RunStatus, message: str | None) -> None:
        """The run's last writes and its last event; no agent task is alive by now."""
        try:
            await self.summary.write(status)
        except DiskError as error:
            log.error("could not write the final summary: %s", error)
        report = self.run_dir_ref.final_report_path
        self.bus.publish(
            RunFinished(
                run_id=self.run_id,
                status=status.value,
                cost_usd=self.ledger.spent_usd,
                message=message,
                report_path=str(report) if report.exists() else None,
            )
        )
        await self.bus.close()
        if self._on_close is not None:
            await self._on_close()

    def _final_status(self) -> tuple[RunStatus, str | None]:
        if self._failure is not None:
            return RunStatus.FAILED, self._failure
        if self._stopping:
            return RunStatus.INTERRUPTED, self._interrupted_message("stopped")
        statuses = {h.status for h in self.handles.values()}
        if AgentStatus.BUDGET_EXHAUSTED in statuses:
            return RunStatus.BUDGET_EXHAUSTED, self.ledger.stop_message()
        if AgentStatus.FAILED in statuses:
            failed = [h.id for h in self.handles.values() if h.status is AgentStatus.FAILED]
            return RunStatus.FAILED, f"agents failed: {', '.join(failed)}"
        if self.handles[self.agents[-1].id].status is AgentStatus.KILLED:
            return RunStatus.KILLED, "the final agent was killed"
        return RunStatus.COMPLETED, None

    async def _run_layer(self, number: int) -> None:
        members = [h for h in self.handles.values() if h.agent.layer == number]
        self.bus.publish(
            LayerStarted(run_id=self.run_id, layer=number, agent_ids=tuple(h.id for h in members))
        )
        slots = asyncio.Semaphore(self.config.execution_settings.max_concurrent_agents)
        async with asyncio.TaskGroup() as group:
            for handle in members:
                if not handle.status.is_final:
                    handle.supervisor = group.create_task(
                        self._supervise(handle, slots), name=f"supervise:{handle.id}"
                    )
        self.bus.publish(
            LayerFinished(
                run_id=self.run_id,
                layer=number,
                statuses={h.id: h.status.value for h in members},
            )
        )

    async def _supervise(self, handle: AgentHandle, slots: asyncio.Semaphore) -> None:
        """One agent from its slot to its report; a fatal error aborts the run (the group)."""
        await handle.wait_until_unpaused()
        async with slots:
            if handle.kill_requested:
                return
            session = self._session(
                handle.agent, handle.state, handle, await self._prior_reports(handle.agent)
            )
            handle.state = session.state
            try:
                task = await handle.drive(self._drive(session), title=handle.agent.title)
            except asyncio.CancelledError:
                if session.unsaved_charge:  # a call cut off by the stop was charged: a resume keeps it
                    await uncancellable(self._save_checkpoint(handle.agent, session.state.resumable()))
                raise
            result = session.killed() if task.cancelled() else task.result()
            # Still holding the slot: an agent waiting for it starts only once this one's report
            # is written, so a failed write ends the run before anything else begins.
            try:
                await uncancellable(self._conclude(handle, result))
            except BaseException:
                handle.mark_interrupted()  # its report or final checkpoint is missing: a resume ends it
                raise
        if result.fatal_for_run:
            raise RunAborted(result.error or "the API refused the run")

    async def _drive(self, session: AgentSession) -> SessionResult:
        """Run a session, turning API errors into a failed agent (or an aborted run for a 401)."""
        try:
            return await session.run()
        except (NonRetryableError, RetriesExhausted) as error:
            return session.fail(error.info)

    async def _write_missing_reports(self) -> None:
        """A forked run starts without the report files of agents finished before the fork."""
        for handle in self.handles.values():
            state = handle.state
            if state is None or not handle.status.is_final or handle.report_path:
                continue
            # Earlier layers come first, so the reports its labels cite are already written.
            session = self._session(handle.agent, state, handle, await self._prior_reports(handle.agent))
            partial = handle.status is not AgentStatus.COMPLETED
            path = self.run_dir_ref.report_path(handle.id)
            await write_atomic_async(path, session.report(partial=partial).encode("utf-8"))
            handle.report_path = str(path)

    def _session(
        self,
        agent: ResolvedAgent,
        state: SessionState | None,
        handle: AgentHandle,
        prior_reports: dict[str, str],
    ) -> AgentSession:
        return AgentSession(
            agent=agent,
            config=self.config,
            client=self.client,
            context=AgentContext(self.bus, self.run_id, agent.id, agent.layer),
            ledger=self.ledger,
            policy=self.policy,
            gate=self.gate,
            control=handle,
            prior_reports=prior_reports,
            save=self._save_checkpoint,
            write_ahead=self.inflight.write if self.inflight is not None else None,
            state=state,
            context_window=self.ledger.prices.context_window(agent.model),
        )

    async def _prior_reports(self, agent: ResolvedAgent) -> dict[str, str]:
        paths = {
            agent_id: Path(path)
            for agent_id in agent.reads
            if (path := self.handles[agent_id].report_path) is not None
        }

        def read() -> dict[str, str]:
            return {a: p.read_text(encoding="utf-8") for a, p in paths.items() if p.exists()}

        return await asyncio.to_thread(read)

    async def _conclude(self, handle: AgentHandle, result: SessionResult) -> None:
        """Write the agent's report and final checkpoint, then announce how it ended."""
        path = self.run_dir_ref.report_path(handle.id)
        await write_atomic_async(path, result.report.encode("utf-8"))
        handle.state = result.state
        await self._save_checkpoint(handle.agent, result.state)
        if result.status is AgentStatus.KILLED:
            handle.killed(str(path))
        elif result.status is AgentStatus.FAILED:
            handle.failed(result.error or "failed", str(path))
        else:
            usage, cost = self.ledger.agent_usage(handle.id)
            handle.finished(result.status, str(path), cost_usd=cost, searches=usage.web_search_requests)
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

    async def _write_final_report(self, status: RunStatus) -> None:
        last_layer = len(self.config.layers)
        paths = {
            h.id: Path(h.report_path)
            for h in self.handles.values()
            if h.agent.layer == last_layer and h.report_path is not None
        }
        if not paths:
            return
        finals = await asyncio.to_thread(lambda: {a: p.read_text(encoding="utf-8") for a, p in paths.items()})
        summary = build_summary(self.view, self._facts(), status, self.run_dir_ref)
        text = final_document(ReportFacts.from_summary(summary, self.config.program.question), finals)
        await write_atomic_async(self.run_dir_ref.final_report_path, text.encode("utf-8"))

    # --- summary.json -----------------------------------------------------------------------

    def _facts(self) -> RunFacts:
        """The run-level facts the view does not fold: the config's shape, ledger totals and caps."""
        snapshot = self.ledger.snapshot()
        return RunFacts(
            program=self.config.program.name,
            simulated=self.simulated,
            started_at=self.started_at,
            layers=len(self.config.layers),
            current_layer=self.current_layer,
            usage=snapshot.usage,
            caps={
                "cap_usd": snapshot.cap_usd,
                "search_cap": snapshot.search_cap,
                "token_cap": snapshot.token_cap,
            },
            parent=self.parent,
            models={a.id: a.model for a in self.agents},
        )
