"""Builds a ready-to-run orchestrator for a new run or a resumed one: the composition root.

Front ends call :func:`start_run` or :func:`resume_run` and then ``await orchestrator.run()``;
they never assemble transports, ledgers or stores themselves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api.batches import BatchClient
from core.api.credentials import NO_API_KEY, api_key_present
from core.api.sdk import AnthropicTransport, open_sdk_transport
from core.api.transport import Transport
from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable
from core.config.loader import load_config
from core.config.model import ResearchConfig, Trust
from core.control import RunAlreadyComplete
from core.engine.agent import SavedAgent
from core.engine.orchestrator import Orchestrator
from core.engine.recovery import RunRecords, read_records, reconcile
from core.engine.session import SessionState
from core.errors import SetupError
from core.events import EventBus
from core.lifecycle import saved_status
from core.logs import setup_failures_logged
from core.persistence.atomic import DiskError, RunAnchor, SpaceReserve
from core.persistence.checkpoints import (
    CheckpointInfo,
    CheckpointNotFound,
    CheckpointStore,
    RestorePoint,
    canonical_json,
    find_checkpoint,
)
from core.persistence.journal import Journal, inherit_records
from core.persistence.journal_read import read_journal
from core.persistence.rundir import RunDir, new_run_id, parent_record
from core.persistence.runlock import RunLock
from core.persistence.runmeta import (
    DEFAULT_API_URL,
    Endpoint,
    RunMetadataError,
    endpoint_record,
    public_url,
    read_endpoint,
    write_endpoint,
)
from core.remote.live import LiveState
from core.safe_text import printable
from core.simulator import Simulator
from core.telemetry.settings import TelemetrySettings
from core.usage import TokenUsage

if TYPE_CHECKING:
    from core.telemetry.run import RunTelemetry

SIMULATED_API_KEY = "sk-ant-simulated-not-a-real-key"
log = logging.getLogger(__name__)
Notice = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ClientHandle:
    transport: Transport
    simulator: Simulator | None

    @property
    def batches(self) -> BatchClient:
        """The Batches endpoints of the same client (the SDK transport serves both)."""
        assert isinstance(self.transport, AnthropicTransport)
        return self.transport


async def open_client(
    config: ResearchConfig, *, simulate: bool, base_url: str | None = None, trust: Trust | None = None
) -> ClientHandle:
    """The SDK transport, with the SDK's own retries off (every retry is ours and visible).

    ``base_url`` with ``simulate`` points at a simulator that is already running (tests and
    benchmarks run it in another process); otherwise ``simulate`` starts one in-process, private to
    this process (:mod:`core.simulator`). A simulator is never reached through a proxy. The real
    API is trusted as ``trust`` says (default: the config's ``network.trust``; :mod:`core.api.network`).
    """
    if simulate and base_url:
        return ClientHandle(
            open_sdk_transport(base_url=base_url, api_key=SIMULATED_API_KEY, direct=True), None
        )
    if simulate:
        simulator = Simulator(config.simulator, private=True)
        await simulator.start()
        transport = open_sdk_transport(
            base_url=simulator.base_url, api_key=SIMULATED_API_KEY, socket_path=simulator.socket_path
        )
        return ClientHandle(transport, simulator)
    if not api_key_present():
        raise SetupError(NO_API_KEY)
    return ClientHandle(open_sdk_transport(trust=trust or config.network.trust), None)


async def _assemble(
    *,
    config: ResearchConfig,
    run_dir: RunDir,
    simulate: bool,
    bus: EventBus | None,
    restored: dict[str, SavedAgent] | None = None,
    ledger_state: dict[str, object] | None = None,
    parent: dict[str, str] | None = None,
    base_url: str | None = None,
    started_at: float | None = None,
    active_s: float = 0.0,
    store: CheckpointStore | None = None,
    lock: RunLock | None = None,
    trust: Trust | None = None,
    records: RunRecords | None = None,
    telemetry: TelemetrySettings | None = None,
) -> Orchestrator:
    prices = PriceTable.from_config(config.pricing)
    ledger = BudgetLedger(config.execution_settings.budget, prices, n_layers=len(config.layers))
    if ledger_state:
        ledger.restore(ledger_state)
    recovery = None
    if records is not None:  # a resume: never less than any record of the run accounts for
        recovery = reconcile(ledger, records, {agent.id: agent.layer for agent in config.agents()})
    _check_saveable(config, prices, ledger)
    if lock is None:
        lock = RunLock(run_dir.path)
        lock.acquire()
    anchor = RunAnchor(run_dir.path)  # every write of the run goes through it from here on
    reserve = SpaceReserve(run_dir.path)
    live = LiveState()
    journal = Journal(run_dir.events_path, on_written=live.written, prompt=live.watched)
    handle: ClientHandle | None = None
    observer: RunTelemetry | None = None
    try:
        anchor.open()
        await asyncio.to_thread(reserve.create)
        await journal.open()
        live.offset = journal.offset
        observer = await _telemetry(config, telemetry, run_dir.path)
        handle = await open_client(config, simulate=simulate, base_url=base_url, trust=trust)
    except BaseException:
        if observer is not None:
            await observer.close()
        await journal.close()
        reserve.close()
        anchor.close()
        lock.release()
        raise
    bus = bus or EventBus()
    bus.subscribe_batches(journal, name="journal")
    if observer is not None:
        bus.listen(observer.handle, name="telemetry")
    client = handle

    async def close() -> None:
        try:
            await client.transport.close()
            if client.simulator is not None:
                await client.simulator.stop()
            if observer is not None:
                await observer.close()
        finally:
            reserve.close()
            anchor.close()
            lock.release()

    orchestrator = Orchestrator(
        config=config,
        run_dir=run_dir,
        transport=handle.transport,
        ledger=ledger,
        bus=bus,
        store=store or CheckpointStore(run_dir.path),
        restored=restored,
        parent=parent,
        simulated=simulate,
        started_at=started_at,
        active_s=active_s,
        on_close=close,
        serve=lambda owner: live.serving(owner, owner.handles, run_dir.control_socket_path),
        recovery=recovery,
        batches=handle.batches if isinstance(handle.transport, AnthropicTransport) else None,
        batch_records=records.batches if records is not None else None,
    )
    loop = asyncio.get_running_loop()

    def disk_full(error: DiskError) -> None:  # called from the writer's thread
        loop.call_soon_threadsafe(orchestrator.abort, str(error))

    def moved(message: str) -> None:  # called from the writer's thread
        loop.call_soon_threadsafe(partial(orchestrator.abort, message, now=True))

    reserve.on_release = disk_full
    journal.on_failed = orchestrator.disk_failed  # the journal is durable state, as checkpoints are
    anchor.on_moved = moved
    return orchestrator


async def _telemetry(
    config: ResearchConfig, settings: TelemetrySettings | None, run_dir: Path
) -> RunTelemetry | None:
    """The run's telemetry when enabled; OpenTelemetry is imported only then (core/telemetry)."""
    if settings is None or not settings.enabled:
        return None
    from core.telemetry.run import RunTelemetry, read_trace_parent
    from core.telemetry.spans import AgentFacts

    agents = {a.id: AgentFacts(a.model, a.max_tokens) for a in config.agents()}
    parent = await asyncio.to_thread(read_trace_parent, run_dir) if settings.otel else None
    observer = RunTelemetry(settings, agents, run_dir, parent)
    observer.serve()
    return observer


def _check_saveable(config: ResearchConfig, prices: PriceTable, ledger: BudgetLedger) -> None:
    """Fail now what would make a checkpoint unsaveable after a paid call (a price of ``.inf``)."""
    probe = TokenUsage(
        input_tokens=1_000_000, output_tokens=1_000_000, cache_write_5m_tokens=1_000_000,
        cache_write_1h_tokens=1_000_000, cache_read_input_tokens=1_000_000, web_search_requests=1000,
    )  # fmt: skip
    for model in sorted({agent.model for agent in config.agents()}):
        cost = prices.cost(model, probe)
        if not math.isfinite(cost):
            raise SetupError(
                f"the price of model {model} gives a cost of {cost}, which cannot be counted or saved; "
                f"set finite prices under pricing.models.{model}"
            )
    try:
        canonical_json(ledger.to_state())
    except ValueError as exc:
        raise SetupError(
            f"the saved budget cannot be written back ({exc}); fix the run's checkpoints"
        ) from None


async def start_run(
    config_path: Path,
    runs_dir: Path,
    *,
    simulate: bool,
    bus: EventBus | None = None,
    base_url: str | None = None,
    trust: Trust | None = None,
    telemetry: TelemetrySettings | None = None,
) -> Orchestrator:
    """Validate the config, create the run directory (with a copy of the config), assemble."""
    config = load_config(config_path)
    if not simulate and not api_key_present():
        await open_client(config, simulate=False)  # raises the SetupError naming the variable
    config_bytes = await asyncio.to_thread(config_path.read_bytes)
    run_dir = RunDir.create(
        runs_dir,
        new_run_id(config.program.name),
        config_bytes,
        metadata=endpoint_record(_endpoint(simulate, base_url)),
    )
    with setup_failures_logged(run_dir.path):  # a bug from here on: its traceback goes to run.log
        return await _assemble(
            config=config, run_dir=run_dir, simulate=simulate, bus=bus, base_url=base_url, trust=trust,
            telemetry=telemetry,
        )  # fmt: skip


async def open_prepared_run(
    run_dir: RunDir, *, simulate: bool, trust: Trust | None = None, telemetry: TelemetrySettings | None = None
) -> Orchestrator:
    """Own a run directory ``run --detach`` created (its background owner: core.detach)."""
    with setup_failures_logged(run_dir.path):
        config = load_config(run_dir.config_copy_path)
        if not run_dir.metadata_path.exists():  # where it runs is fixed now, before any call
            write_endpoint(run_dir, _endpoint(simulate, None))
        return await _assemble(
            config=config, run_dir=run_dir, simulate=simulate, bus=None, trust=trust, telemetry=telemetry
        )


def _current_api_url() -> str:
    return public_url(os.environ.get("ANTHROPIC_BASE_URL")) or DEFAULT_API_URL


def _endpoint(simulate: bool, base_url: str | None) -> Endpoint:
    return Endpoint(True, public_url(base_url)) if simulate else Endpoint(False, _current_api_url())


def _resume_endpoint(run: RunDir, simulate: bool | None, base_url: str | None) -> Endpoint:
    """Where a resumed run runs: where it ran, unless ``simulate`` says otherwise explicitly.

    ``simulate=None`` keeps the recorded endpoint and refuses when it is unknown (``run.json``
    missing or damaged) or when ``ANTHROPIC_BASE_URL`` now points elsewhere: neither may turn a
    resume into calls to an endpoint the user did not choose. True / False switch explicitly.
    """
    try:
        recorded: Endpoint | None = read_endpoint(run)
    except RunMetadataError as error:
        if simulate is None:
            raise SetupError(str(error)) from None
        recorded = None
    if simulate is not None:
        return _endpoint(simulate, base_url)
    assert recorded is not None
    if recorded.simulated:
        return Endpoint(True, public_url(base_url))
    current = _current_api_url()
    if recorded.base_url is not None and current != recorded.base_url:
        raise SetupError(
            f"run {run.run_id} ran against {recorded.describe()}, but ANTHROPIC_BASE_URL now points at "
            f"{current}; set it back to continue where it ran, or add --api to continue it at {current}"
        )
    return Endpoint(False, current)


async def resume_run(
    runs_dir: Path,
    run_ref: str,
    *,
    checkpoint_id: str | None = None,
    simulate: bool | None = None,
    bus: EventBus | None = None,
    base_url: str | None = None,
    start_over: bool = False,
    on_notice: Notice | None = None,
    trust: Trust | None = None,
    telemetry: TelemetrySettings | None = None,
) -> Orchestrator:
    """Continue a run in place from its latest good checkpoint, or fork it from an earlier one.

    ``simulate`` None keeps the endpoint the run was started on (see :func:`_resume_endpoint`).
    Every corrupt checkpoint passed over is named through ``on_notice``; a run none of whose
    checkpoints is usable is refused (it would buy everything again) unless ``start_over``.
    """
    notice = on_notice or log.warning
    source = RunDir.open(runs_dir, run_ref)
    with setup_failures_logged(source.path):  # a bug from here on: its traceback goes to run.log
        source.check_sandbox()
        config = load_config(source.config_copy_path)
        summary = source.read_summary() or {}
        if checkpoint_id is None and summary.get("status") == "completed":
            report = source.final_report_path
            where = f"; its report is {report}" if report.exists() else ""
            raise RunAlreadyComplete(f"run {source.run_id} is already complete{where}")
        endpoint = _resume_endpoint(source, simulate, base_url)
        started = summary.get("started_at")
        store = CheckpointStore(source.path)
        infos = await asyncio.to_thread(store.list)
        good = [i for i in infos if i.status == "ok"]
        target = source
        parent = summary.get("parent")
        upto: int | None = None
        if checkpoint_id is not None:
            try:
                picked = find_checkpoint(infos, checkpoint_id)
            except CheckpointNotFound as missing:
                raise SetupError(
                    f"{printable(str(missing))} in run {source.run_id}: "
                    f"see `research-orchestrator checkpoints {source.run_id}`"
                ) from None
            checkpoint_id = picked.id  # a unique prefix names the whole id from here on
            if picked.status != "ok":
                raise SetupError(f"checkpoint {checkpoint_id} is corrupt ({picked.problem}); pick another")
            if good and picked.seq != good[-1].seq:
                target = RunDir.create(
                    runs_dir,
                    new_run_id(config.program.name),
                    source.config_copy_path.read_bytes(),
                    metadata=endpoint_record(endpoint),
                )
                # No lock on the source: checkpoints are immutable once written and written atomically,
                # so copying a prefix is safe even while the source runs, and the source stays untouched.
                copied = await asyncio.to_thread(store.fork_into, checkpoint_id, target.path)
                await asyncio.to_thread(
                    inherit_records, source.events_path, target.events_path, "checkpoint_saved", copied,
                    "checkpoint_id",
                )  # fmt: skip
                parent = parent_record(source.run_id, checkpoint_id)
                started = None  # a fork is a new run
            upto = picked.seq
        lock = RunLock(target.path)
        lock.acquire()
        try:
            if target is source and checkpoint_id is None and not start_over:
                await asyncio.to_thread(_refuse_to_rebuy, source, config, infos, summary)
            # The store that restores is the one the run saves with: it already knows each agent's
            # chain, so the first save after the resume reads nothing more (and nothing on the loop).
            target_store = CheckpointStore(target.path)
            point = await asyncio.to_thread(target_store.restore_point, upto)
            for line in _skipped_notices(point):
                notice(line)
            listed = infos if target is source else []  # a fork's journal is its own, still empty
            records = await asyncio.to_thread(read_records, target, point, listed)
            restored: dict[str, SavedAgent] = {}
            for agent_id, checkpoint in point.agents.items():
                state = SessionState.restore(checkpoint.messages, checkpoint.agent_state)
                restored[agent_id] = SavedAgent(state, checkpoint.agent_state)
            if target is source:
                source.sweep_temp_files()
                _keep_reports_of_finished(source, restored)
                if simulate is not None:  # an explicit switch is remembered for later resumes
                    write_endpoint(source, endpoint)
            orchestrator = await _assemble(
                config=config,
                run_dir=target,
                simulate=endpoint.simulated,
                bus=bus,
                restored=restored,
                ledger_state=point.ledger_state,
                parent=parent,
                base_url=base_url,
                started_at=float(started) if isinstance(started, int | float) else None,
                active_s=_active_s(summary) if target is source else 0.0,
                store=target_store,
                lock=lock,
                trust=trust,
                records=records,
                telemetry=telemetry,
            )
            if orchestrator.recovery.notice:
                notice(orchestrator.recovery.notice)
            return orchestrator
        except BaseException:
            lock.release()
            raise


def _active_s(summary: dict[str, Any]) -> float:
    """How long a run resumed in place has run so far (0 for one written before this was kept)."""
    active = summary.get("active_s")
    return float(active) if isinstance(active, int | float) and active >= 0 else 0.0


def _journaled_checkpoints(run: RunDir) -> int:
    """How many checkpoints the run's journal says were saved (0 if it cannot be read)."""
    try:
        return sum(1 for event in read_journal(run.events_path) if event.get("kind") == "checkpoint_saved")
    except (OSError, DiskError):
        return 0


def _skipped_notices(point: RestorePoint) -> list[str]:
    lines = []
    for info in point.skipped:
        kept = point.agents.get(info.agent_id)
        since = f"its checkpoint {kept.info.id}" if kept else "its start"
        lines.append(
            f"skipped corrupt checkpoint {info.id} ({info.problem}); {info.agent_id} resumes from {since}"
        )
    return lines


def _refuse_to_rebuy(
    run: RunDir, config: ResearchConfig, infos: list[CheckpointInfo], summary: dict[str, Any]
) -> None:
    """Resuming a run with no usable checkpoint starts it over: say so, and what it costs, first."""
    if any(info.ok for info in infos):
        return
    spent = summary.get("cost_usd")
    spent_usd = float(spent) if isinstance(spent, int | float) and math.isfinite(spent) else 0.0
    journaled = _journaled_checkpoints(run) if not infos else 0
    if not infos and not journaled:
        return  # no checkpoint was ever saved (stopped before its first turn landed): nothing to lose
    from core.estimate import estimate

    cost = estimate(config, PriceTable.from_config(config.pricing)).usd
    if infos:
        names = ", ".join(info.id for info in infos[:5]) + (", ..." if len(infos) > 5 else "")
        what = f"none of its {len(infos)} checkpoints is usable (all corrupt: {names})"
    else:
        what = f"its checkpoints are gone (events.jsonl records {journaled} saved)"
    raise SetupError(
        f"run {run.run_id}: {what}, so resuming it would start over and pay for every turn again: "
        f"about ${cost.expected:.2f} (${cost.low:.2f} to ${cost.high:.2f}), on top of the "
        f"${spent_usd:.2f} already spent. To start over anyway, add --start-over"
    )


def _keep_reports_of_finished(run_dir: RunDir, restored: dict[str, SavedAgent]) -> None:
    """Reports of agents not finished at the restore point are stale: move them aside."""
    for path in run_dir.reports_dir.glob("*.md"):
        saved = restored.get(path.stem)
        if saved is None or not saved_status(saved.figures).is_final:
            stale = run_dir.reports_dir / ".stale"
            stale.mkdir(mode=0o700, exist_ok=True)
            shutil.move(str(path), stale / path.name)
