"""Layers in order, the agents of a layer concurrently; the control API a front end drives.

The orchestrator owns the run's shared pieces (transport, ledger, retry gate, checkpoint store,
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
from dataclasses import replace
from pathlib import Path
from typing import Any

from core import correlation
from core.api.batches import BatchClient
from core.api.retry import NonRetryableError, RequestGate, RetriesExhausted, RetryPolicy
from core.api.streaming import AgentContext
from core.api.transport import Transport
from core.budget.ledger import BudgetLedger
from core.config.model import ResearchConfig, ResolvedAgent
from core.control import AgentStatus, RunOutcome, RunStatus
from core.engine.agent import AgentHandle, SavedAgent, uncancellable
from core.engine.batch_round import BatchRound, PollSchedule
from core.engine.budget_feed import BudgetFeed
from core.engine.recovery import Recovery
from core.engine.session import AgentSession, SessionResult, SessionState
from core.errors import ResearchOrchestratorError
from core.events import (
    AgentFailed,
    AgentFinished,
    AgentKilled,
    AgentSeed,
    AgentSkipped,
    AttemptCharged,
    CheckpointSaved,
    DiskErrorRaised,
    Event,
    EventBus,
    LayerFinished,
    LayerStarted,
    RunFinished,
    RunStarted,
    RunStopping,
)
from core.lifecycle import AgentRow, saved_form, saved_status, seed_of, step
from core.lifecycle import restored as restored_row
from core.persistence.atomic import DiskError, ensure_private_dir, write_atomic_async
from core.persistence.batchlog import BatchLog, BatchRecords
from core.persistence.checkpoints import CheckpointInfo, CheckpointStore
from core.persistence.inflight import InFlightLog
from core.persistence.rundir import RunDir
from core.persistence.summary import RunFacts, SummaryWriter, build_summary
from core.reports.document import ReportFacts, final_document
from core.view import RunView

log = logging.getLogger(__name__)
GONE_TITLE = "(no longer in the config)"


class RunAborted(ResearchOrchestratorError):
    """An agent's error ends the whole run (a rejected API key): its siblings are interrupted."""


class Orchestrator:
    """Runs one research program in one run directory (implements :class:`core.control.RunControl`)."""

    def __init__(
        self,
        *,
        config: ResearchConfig,
        run_dir: RunDir,
        transport: Transport,
        ledger: BudgetLedger,
        bus: EventBus | None = None,
        store: CheckpointStore | None = None,
        restored: dict[str, SavedAgent] | None = None,
        parent: dict[str, str] | None = None,
        simulated: bool = False,
        started_at: float | None = None,
        active_s: float = 0.0,
        on_close: Callable[[], Awaitable[None]] | None = None,
        serve: Callable[[Orchestrator], AbstractAsyncContextManager[object]] | None = None,
        recovery: Recovery | None = None,
        batches: BatchClient | None = None,
        batch_records: BatchRecords | None = None,
        poll: PollSchedule | None = None,
    ) -> None:
        self.config = config
        self.run_dir_ref = run_dir
        self.run_dir: Path = run_dir.path
        self.run_id = run_dir.run_id
        self.transport = transport
        self.ledger = ledger
        self.bus = bus or EventBus()
        self.budget_feed = BudgetFeed(ledger, self.bus, self.run_id)
        ledger.on_reserve = self.budget_feed.changed  # the meter shows a reservation as it is made
        self.store = store
        checkpoints = store is not None and config.execution_settings.checkpoints.enabled
        self.inflight = InFlightLog(run_dir.inflight_dir) if checkpoints else None
        self.batches = batches  # the Batches endpoints, for layers in batch mode
        self.batch_log = BatchLog(run_dir.inflight_dir) if checkpoints else None
        self.batch_records = batch_records or BatchRecords()  # what earlier processes submitted
        self.poll = poll or PollSchedule()
        self._rounds: dict[int, BatchRound] = {}  # the batch layer running now
        self._cancel_batches = False  # a stop now (not a clean stop) cancels the batches in progress
        self.parent = parent
        self.simulated = simulated
        self.resumed = bool(restored)
        self.recovery = recovery or Recovery()
        self.started_at = started_at or time.time()
        self.active_before_s = active_s  # earlier attempts' running time (a resume in place)
        self.running_since = time.time()
        self._on_close = on_close
        self._serve = serve  # what the owner offers while it runs (the control channel)
        self.agents = config.agents()
        self.handles = {a.id: self._handle(a, (restored or {}).get(a.id)) for a in self.agents}
        self.gone = self._gone_agents(restored or {})
        self._gone_saved = {a: saved for a, saved in (restored or {}).items() if a in self.gone}
        self.view = RunView()
        self.bus.listen(self._fold, name="run view")  # first: summary.json reads it
        self._stopping = False
        self._draining = False  # a clean stop waits for the calls in flight (see stop())
        self._finished = False  # the run has ended: a stop has nothing left to do
        self._grace: asyncio.TimerHandle | None = None  # ends a clean stop's wait
        self._stop_deadline: float | None = None
        self._waiting_for: tuple[str, ...] = ()  # the agents whose calls a clean stop waits for
        self._reason: str | None = None
        self._saved: dict[str, tuple[int, dict[str, Any]]] = {}  # each agent's state at its last save
        self._failure: str | None = None  # set by abort(): the run stops as failed
        self.policy = RetryPolicy(config.execution_settings.retry)
        self.gate = RequestGate(config.execution_settings.max_concurrent_agents)
        self.current_layer = 0
        self.summary = SummaryWriter(run_dir, self.view, self._facts)

    def _handle(self, agent: ResolvedAgent, saved: SavedAgent | None) -> AgentHandle:
        """The agent's handle, its row where its checkpoint and the restored ledger left it."""
        usage, cost = self.ledger.agent_usage(agent.id)
        figures = saved.figures if saved is not None else {}
        report = self.run_dir_ref.report_path(agent.id)
        row = restored_row(
            agent.id, agent.layer, agent.title, figures, cost_usd=cost, searches=usage.web_search_requests,
            unconfirmed=self.ledger.agent_unconfirmed(agent.id),
            report_path=str(report) if report.exists() else None,
        )  # fmt: skip
        handle = AgentHandle(agent, self.run_id, self.bus.publish, saved.state if saved else None, row)
        handle.report_path = row.report_path
        handle.on_call_over = self._call_over
        return handle

    def _gone_agents(self, restored: dict[str, SavedAgent]) -> dict[str, AgentRow]:
        """Rows of agents no longer in the config whose spend the run still counts (their calls
        were billed): listed, never run, so that the summary's dollars stay the ledger's."""
        gone: dict[str, AgentRow] = {}
        charged = {call.agent_id: call.layer for call in self.recovery.lost_calls}
        counted = set(restored) | set(self.ledger.agents()) | set(charged)
        for agent_id in sorted(counted - set(self.handles)):
            usage, cost = self.ledger.agent_usage(agent_id)
            saved = restored.get(agent_id)
            figures = saved.figures if saved is not None else {}
            layer = charged.get(agent_id) or self.ledger.agent_layer(agent_id) or 1
            row = restored_row(
                agent_id, layer, GONE_TITLE, figures, cost_usd=cost, searches=usage.web_search_requests,
                unconfirmed=self.ledger.agent_unconfirmed(agent_id),
            )  # fmt: skip
            status = row.status if row.status.is_final else AgentStatus.KILLED
            gone[agent_id] = replace(row, status=status, report_path=None)
        return gone

    def _fold(self, event: Event) -> None:
        """The run's view takes every event first; a changed row reaches summary.json soon after."""
        change = self.view.apply(event)
        if change.rows or change.all_rows:
            self.summary.changed()

    # --- control API ------------------------------------------------------------------------

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self.handles[agent_id].status

    def pause(self, agent_id: str) -> bool:
        handle = self.handles.get(agent_id)
        return handle is not None and handle.pause()

    def resume(self, agent_id: str) -> bool:
        handle = self.handles.get(agent_id)
        return handle is not None and handle.resume()

    def kill(self, agent_id: str, *, now: bool = True) -> bool:
        """Kill an agent: ``now`` cancels its call in flight; otherwise the call finishes its turn first."""
        handle = self.handles.get(agent_id)
        return handle is not None and handle.kill(now=now)

    def in_flight_usd(self, agent_id: str | None = None) -> float:
        """What stopping now would count for the calls in flight (of ``agent_id``): their worst case."""
        return self.ledger.in_flight_usd(None if agent_id is None else (agent_id,))

    def stop(self, *, now: bool = False) -> None:
        """Stop the run; every completed turn is saved and the run can be resumed.

        By default cleanly: no new call starts, and the calls in flight finish their turn and are
        saved, for ``execution_settings.stop_grace_s`` at most; a call cancelled is billed by the
        API all the same, and its answer would be lost. ``now`` (or once the grace is over) cancels
        the calls still in flight, each charged its worst case.
        """
        if self._finished:
            return
        if now or self.config.execution_settings.stop_grace_s <= 0:
            self._cancel_batches = now
            self._stop_now()
            return
        if self._stopping:
            return  # already stopping (cleanly, or now)
        self._stopping = self._draining = True
        for handle in self.handles.values():
            handle.drain()
        grace = self.config.execution_settings.stop_grace_s
        self._stop_deadline = time.time() + grace
        self._grace = asyncio.get_running_loop().call_later(grace, self._stop_now)
        self._call_over()

    def _call_over(self) -> None:
        """An agent has no call in flight any more: a clean stop that waited for it says so, and
        stops the run once no call is left."""
        if not self._draining:
            return
        # A batched request is not waited for: its batch runs on and the resume collects it.
        flying = tuple(h.id for h in self.handles.values() if h.in_call and not h.agent.batched)
        if flying == self._waiting_for and self._stop_deadline is not None and flying:
            return
        self._waiting_for = flying
        self.bus.publish(
            RunStopping(
                run_id=self.run_id, deadline=self._stop_deadline, in_flight=flying,
                worst_case_usd=self.ledger.in_flight_usd(flying),
            )
        )  # fmt: skip
        if not flying:
            self._stop_now(announce=False)

    def _stop_now(self, *, announce: bool = True) -> None:
        """Cancel every agent: a call still in flight is charged its worst case."""
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        was_draining, self._draining = self._draining, False
        if announce and (was_draining or not self._stopping):
            flying = tuple(h.id for h in self.handles.values() if h.in_call)
            self.bus.publish(
                RunStopping(
                    run_id=self.run_id, now=True, in_flight=flying,
                    worst_case_usd=self.ledger.in_flight_usd(flying),
                )
            )  # fmt: skip
        self._stopping = True
        for handle in self.handles.values():
            handle.interrupt()

    def abort(self, message: str, *, now: bool = False) -> None:
        """Stop the run as failed (exit 4) with ``message``, its state saved. E.g. the disk filled
        up: the stop is clean, so an answer in flight still arrives and is saved in the space the
        run's reserve gave back (:class:`~core.persistence.atomic.SpaceReserve`) rather than bought
        again by the resume. ``now`` when nothing more should be written (the run directory moved)."""
        self._failure = self._failure or message
        self.stop(now=now)

    def disk_failed(self, error: DiskError) -> None:
        """A write the run depends on failed outside the agents' tasks (its journal): the run stops
        as failed, said as a failed checkpoint write is (a disk error event, the error's message)."""
        self.abort(self._disk_failed(error))

    # --- the run ----------------------------------------------------------------------------

    def _seeds(self) -> dict[str, AgentSeed]:
        """What a resumed or forked run already holds, per agent: the rows it starts from."""
        seeds = {h.id: seed_of(h.row) for h in self.handles.values() if h.state is not None or h.row.cost_usd}
        return seeds | {agent_id: seed_of(row) for agent_id, row in self.gone.items()}

    async def run(self) -> RunOutcome:
        if self._serve is None:
            return await self._run()
        async with self._serve(self):
            return await self._run()

    async def _run(self) -> RunOutcome:
        correlation.run_id.set(self.run_id)  # log records of the run name it (its agents' tasks too)
        self.bus.publish(
            RunStarted(
                run_id=self.run_id,
                program=self.config.program.name,
                question=self.config.program.question,
                run_dir=str(self.run_dir),
                agents=(
                    *((a.id, a.layer, a.title) for a in self.agents),
                    *((row.agent_id, row.layer, row.title) for row in self.gone.values()),
                ),
                seeds=self._seeds(),
                parent=self.parent,
                resumed=self.resumed,
                simulated=self.simulated,
                started_at=self.started_at,
                notice=self.recovery.notice,
                active_s=self.active_before_s,
            )
        )
        if self.recovery.notice:
            log.warning("%s", self.recovery.notice)
        for info in self.recovery.unrecorded:  # saved just before a crash lost their records
            self._record_checkpoint(info)
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
        it died (:mod:`core.engine.recovery` found them, priced as they were sent), then save the
        agents' checkpoints, so that the charge is kept and never made twice. An agent no longer in
        the config is charged too: its call was billed all the same."""
        charged: list[tuple[ResolvedAgent, SessionState]] = []
        for call in self.recovery.lost_calls:
            cost = self.ledger.charge_lost(call.agent_id, call.layer, call.model, call.usage, call.cost_usd)
            event = AttemptCharged(
                run_id=self.run_id, agent_id=call.agent_id, layer=call.layer, turn=call.turn,
                usage=call.usage, cost_usd=cost, basis="worst_case", outcome="process_ended",
            )  # fmt: skip
            handle = self.handles.get(call.agent_id)
            if handle is not None:
                handle.apply(event)
            else:
                self.bus.publish(event)
            self.bus.publish(self.ledger.to_event(self.run_id))
            log.warning("%s: a call in flight when its process ended is charged $%.4f", call.agent_id, cost)
            if handle is not None and handle.state is not None:
                charged.append((handle.agent, handle.state))
            elif call.agent_id in self._gone_saved:
                await self._save_gone(call.agent_id)
        for agent, state in charged:
            await self._save_checkpoint(agent, state)

    async def _save_gone(self, agent_id: str) -> None:
        """Checkpoint an agent no longer in the config after its lost call was charged: its figures
        then agree with summary.json, and a later resume does not charge the call again. It keeps
        the status it was saved with (it would carry on if put back in the config)."""
        saved, row = self._gone_saved[agent_id], self.view.agents.get(agent_id)
        if row is None or self.store is None or not self.config.execution_settings.checkpoints.enabled:
            return
        kept = replace(row, status=saved_status(saved.figures))
        snapshot = self.ledger.snapshot()
        await self.store.save(
            agent_id=agent_id, layer=row.layer, turn=row.turn, messages=saved.state.messages,
            agent_state={**saved.state.counters(), **saved_form(kept)}, ledger_state=self.ledger.to_state(),
            cost_usd=snapshot.spent_usd, tokens=snapshot.tokens, agent_status=kept.status.value,
            on_saved=self._record_checkpoint,
        )  # fmt: skip

    def _record_checkpoint(self, info: CheckpointInfo) -> None:
        """The journal's record of a checkpoint on disk (with its checksum: what verify trusts)."""
        self.bus.publish(
            CheckpointSaved(
                run_id=self.run_id, agent_id=info.agent_id, layer=info.layer, turn=info.turn,
                checkpoint_id=info.id, bytes_written=info.size_bytes, sha256=info.sha256,
            )
        )  # fmt: skip

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
        self._reason = message  # summary.json's reason
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
        self._finished = True
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._draining = False
        self._reason = message
        try:
            await self.summary.close(status)
        except DiskError as error:
            log.error("could not write the final summary: %s", error)
        report = self.run_dir_ref.final_report_path
        self.budget_feed.close()
        self.bus.publish(
            RunFinished(
                run_id=self.run_id,
                status=status,
                cost_usd=self.ledger.spent_usd,
                message=message,
                report_path=str(report) if report.exists() else None,
            )
        )
        await self.bus.close()
        if self._on_close is not None:
            await self._on_close()

    def _inputs_failed(self, agent: ResolvedAgent) -> str | None:
        """Why ``agent`` must not start: every agent whose report it reads failed (or was skipped)."""
        inputs = [self.handles[agent_id] for agent_id in agent.reads]
        if not inputs or any(h.status not in (AgentStatus.FAILED, AgentStatus.SKIPPED) for h in inputs):
            return None
        names = ", ".join(h.id for h in inputs)
        return f"every report it reads is of an agent that failed ({names}): it did not start"

    def _final_status(self) -> tuple[RunStatus, str | None]:
        if self._failure is not None:
            return RunStatus.FAILED, self._failure
        if self._stopping:
            return RunStatus.INTERRUPTED, self._interrupted_message("stopped")
        statuses = {h.status for h in self.handles.values()}
        if AgentStatus.BUDGET_EXHAUSTED in statuses:
            return RunStatus.BUDGET_EXHAUSTED, self.ledger.stop_message()
        if AgentStatus.FAILED in statuses or AgentStatus.SKIPPED in statuses:
            failed = [h.id for h in self.handles.values() if h.status is AgentStatus.FAILED]
            skipped = [h.id for h in self.handles.values() if h.status is AgentStatus.SKIPPED]
            said = f"agents failed: {', '.join(failed)}" if failed else ""
            if skipped:
                said += ("; " if said else "") + f"skipped, as every input failed: {', '.join(skipped)}"
            return RunStatus.FAILED, said
        if self.handles[self.agents[-1].id].status is AgentStatus.KILLED:
            return RunStatus.KILLED, "the final agent was killed"
        return RunStatus.COMPLETED, None

    async def _run_layer(self, number: int) -> None:
        members = [h for h in self.handles.values() if h.agent.layer == number]
        self.bus.publish(
            LayerStarted(run_id=self.run_id, layer=number, agent_ids=tuple(h.id for h in members))
        )
        batch = self._batch_round(number, members)
        # A batch layer's agents all take part in each round: they wait on the batch, not a stream.
        width = len(members) if batch is not None else self.config.execution_settings.max_concurrent_agents
        slots = asyncio.Semaphore(max(1, width))
        try:
            async with asyncio.TaskGroup() as group:
                for handle in members:
                    if not handle.status.is_final:
                        handle.supervisor = group.create_task(
                            self._supervise(handle, slots), name=f"supervise:{handle.id}"
                        )
        finally:
            if batch is not None:
                del self._rounds[number]
                await batch.close()
        self.bus.publish(
            LayerFinished(
                run_id=self.run_id,
                layer=number,
                statuses={h.id: h.status for h in members},
            )
        )

    def _batch_round(self, number: int, members: list[AgentHandle]) -> BatchRound | None:
        """The rounds of layer ``number`` if it runs in batch mode (its agents at work joined)."""
        if self.config.layers[number - 1].mode != "batch":
            return None
        if self.batches is None:
            raise RunAborted(
                f"layer {number} is in batch mode, but this run's API client has no Batches endpoints"
            )
        batch = self._rounds[number] = BatchRound(
            client=self.batches, layer=number, run_id=self.run_id, publish=self.bus.publish,
            log=self.batch_log, records=self.batch_records, schedule=self.poll,
            agents=[h.id for h in members if not h.status.is_final],
        )  # fmt: skip
        return batch

    async def _supervise(self, handle: AgentHandle, slots: asyncio.Semaphore) -> None:
        try:
            await self._supervise_agent(handle, slots)
        finally:
            batch = self._rounds.get(handle.agent.layer)
            if batch is not None:
                batch.leave(handle.id)

    async def _supervise_agent(self, handle: AgentHandle, slots: asyncio.Semaphore) -> None:
        """One agent from its slot to its report; a fatal error aborts the run (the group)."""
        await handle.wait_until_unpaused()
        async with slots:
            # Read before the checks, with nothing awaited after them until the agent's task exists:
            # a kill (or a stop) while it has no task ends it at once, and it must not start after.
            prior = await self._prior_reports(handle.agent)
            if handle.kill_requested or self._stopping:
                return  # (a stop: the agent starts when the run is resumed)
            if handle.state is None and (reason := self._inputs_failed(handle.agent)) is not None:
                handle.publish(AgentSkipped, reason=reason)  # it would pay to build on nothing
                return
            session = self._session(handle.agent, handle.state, handle, prior)
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
        """Reports of finished agents whose file is missing: a forked run starts without those of
        agents finished before the fork, and a stop can land between an agent's final checkpoint
        and its report. The agent's ending is announced again with the report's path, so its row
        (and summary.json) names the report."""
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
            handle.apply(self._ending(handle, handle.status, handle.row.error))

    def _session(
        self,
        agent: ResolvedAgent,
        state: SessionState | None,
        handle: AgentHandle,
        prior_reports: dict[str, str],
    ) -> AgentSession:
        context = AgentContext(self.bus, self.run_id, agent.id, agent.layer, sink=handle.apply)
        transport: Transport = self.transport
        gate = self.gate
        batch = self._rounds.get(agent.layer) if agent.batched else None
        if batch is not None:
            transport = batch.transport(
                self.transport, context, lambda: handle.row.turn,
                lambda: "kill" if handle.kill_requested else "now" if self._cancel_batches else "stop",
            )  # fmt: skip
            gate = batch.gate
        return AgentSession(
            agent=agent,
            config=self.config,
            transport=transport,
            context=context,
            ledger=self.ledger,
            policy=self.policy,
            gate=gate,
            control=handle,
            prior_reports=prior_reports,
            save=self._save_checkpoint,
            write_ahead=self.inflight.write if self.inflight is not None else None,
            release_ahead=self.inflight.release if self.inflight is not None else None,
            state=state,
            context_window=self.ledger.prices.context_window(agent.model),
            last_running=lambda: self._last_running(agent.id),
        )

    def _last_running(self, agent_id: str) -> bool:
        """Whether every other agent of the run has ended (none runs, waits or is still to start)."""
        return all(h.status.is_final for h in self.handles.values() if h.id != agent_id)

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
        ending = self._ending(handle, result.status, result.error)
        final = step(handle.row, ending)
        # The checkpoint holds the row as the ending leaves it, saved before the ending is announced
        # (unless the agent's last turn saved it so already).
        if result.fatal_for_run:  # the run's failure (a key, a certificate), not the agent's:
            await self._save_checkpoint(handle.agent, result.state.resumable())  # a resume runs it again
        elif self._saved.get(handle.id) != _saved_mark(result.state, final):
            await self._save_checkpoint(handle.agent, result.state, result.status)
        handle.report_path = str(path)
        handle.apply(ending)
        # Within the summary's throttle, like every other change of a row: unthrottled, each of N
        # agents ending wrote all N rows (quadratic in agents: 1,000 agents wrote 1,000 summaries
        # of 1,000 rows).
        self.summary.changed()

    def _ending(self, handle: AgentHandle, status: AgentStatus, error: str | None = None) -> Event:
        """The event that ends the agent's attempt with ``status`` (its report written)."""
        report_path = str(self.run_dir_ref.report_path(handle.id))
        if status is AgentStatus.KILLED:
            return handle.event(AgentKilled, report_path=report_path)
        if status is AgentStatus.FAILED:
            return handle.event(AgentFailed, error=error or "failed", report_path=report_path)
        usage, cost = self.ledger.agent_usage(handle.id)
        return handle.event(
            AgentFinished, status=status, report_path=report_path, turns=handle.row.turn,
            searches=usage.web_search_requests, cost_usd=cost,
        )  # fmt: skip

    async def _save_checkpoint(
        self, agent: ResolvedAgent, state: SessionState, ending: AgentStatus | None = None
    ) -> None:
        """Save the agent's conversation and its row with the ledger; with ``ending``, the row as
        that ending will leave it (the agent's final checkpoint)."""
        handle = self.handles[agent.id]
        row = handle.row if ending is None else step(handle.row, self._ending(handle, ending))
        if self.store is None or not self.config.execution_settings.checkpoints.enabled:
            self.summary.changed()
            return
        snapshot = self.ledger.snapshot()
        mark = _saved_mark(state, row)
        await self.store.save(
            agent_id=agent.id,
            layer=agent.layer,
            turn=row.turn,
            messages=state.messages,
            agent_state={**state.counters(), **saved_form(row)},
            ledger_state=self.ledger.to_state(),
            cost_usd=snapshot.spent_usd,
            tokens=snapshot.tokens,
            agent_status=row.status.value,
            on_saved=self._record_checkpoint,
        )
        self._saved[agent.id] = mark
        self.summary.changed()

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
            reason=self._reason,
            active_s=self.active_before_s + time.time() - self.running_since,
        )


def _saved_mark(state: SessionState, row: AgentRow) -> tuple[int, dict[str, Any]]:
    """What tells two saves of an agent apart: its conversation's length, its counters and row."""
    return len(state.messages), {**state.counters(), **saved_form(row)}
