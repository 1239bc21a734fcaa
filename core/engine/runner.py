"""Builds a ready-to-run orchestrator for a new run or a resumed one: the composition root.

Front ends call :func:`start_run` or :func:`resume_run` and then ``await orchestrator.run()``;
they never assemble clients, ledgers or stores themselves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anthropic import AsyncAnthropic

from core.api.credentials import NO_API_KEY, api_key_present
from core.api.usage import TokenUsage
from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable
from core.config.loader import load_config
from core.config.model import ResearchConfig
from core.control import RunAlreadyComplete
from core.engine.orchestrator import Orchestrator
from core.engine.session import SessionState
from core.events import EventBus
from core.persistence.atomic import DiskError, SpaceReserve
from core.persistence.checkpoints import (
    CheckpointInfo,
    CheckpointNotFound,
    CheckpointStore,
    RestorePoint,
    canonical_json,
    find_checkpoint,
)
from core.persistence.journal import Journal, read_journal
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

SIMULATED_API_KEY = "sk-ant-simulated-not-a-real-key"
log = logging.getLogger(__name__)
Notice = Callable[[str], None]


class SetupError(Exception):
    """A user-facing problem found before the run starts (exit code 2)."""


@dataclass(frozen=True, slots=True)
class ClientHandle:
    client: AsyncAnthropic
    simulator: Simulator | None


async def open_client(config: ResearchConfig, *, simulate: bool, base_url: str | None = None) -> ClientHandle:
    """The SDK client, with its own retries off (every retry is ours and visible).

    ``base_url`` with ``simulate`` points at a simulator that is already running (tests and
    benchmarks run it in another process); otherwise ``simulate`` starts one in-process.
    """
    if simulate and base_url:
        return ClientHandle(AsyncAnthropic(base_url=base_url, api_key=SIMULATED_API_KEY, max_retries=0), None)
    if simulate:
        simulator = Simulator(config.simulator)
        await simulator.start()
        client = AsyncAnthropic(base_url=simulator.base_url, api_key=SIMULATED_API_KEY, max_retries=0)
        return ClientHandle(client, simulator)
    if not api_key_present():
        raise SetupError(NO_API_KEY)
    return ClientHandle(AsyncAnthropic(max_retries=0), None)


async def _assemble(
    *,
    config: ResearchConfig,
    run_dir: RunDir,
    simulate: bool,
    bus: EventBus | None,
    restored: dict[str, SessionState] | None = None,
    ledger_state: dict[str, object] | None = None,
    parent: dict[str, str] | None = None,
    base_url: str | None = None,
    started_at: float | None = None,
    store: CheckpointStore | None = None,
    lock: RunLock | None = None,
) -> Orchestrator:
    prices = PriceTable.from_config(config.pricing)
    ledger = BudgetLedger(config.execution_settings.budget, prices, n_layers=len(config.layers))
    if ledger_state:
        ledger.restore(ledger_state)
    _check_saveable(config, prices, ledger)
    if lock is None:
        lock = RunLock(run_dir.path)
        lock.acquire()
    reserve = SpaceReserve(run_dir.path)
    live = LiveState()
    journal = Journal(run_dir.events_path, on_written=live.written, prompt=live.watched)
    handle: ClientHandle | None = None
    try:
        await asyncio.to_thread(reserve.create)
        await journal.open()
        live.offset = journal.offset
        handle = await open_client(config, simulate=simulate, base_url=base_url)
    except BaseException:
        await journal.close()
        reserve.close()
        lock.release()
        raise
    bus = bus or EventBus()
    bus.subscribe_batches(journal, name="journal")
    client = handle

    async def close() -> None:
        try:
            await client.client.close()
            if client.simulator is not None:
                await client.simulator.stop()
        finally:
            reserve.close()
            lock.release()

    orchestrator = Orchestrator(
        config=config,
        run_dir=run_dir,
        client=handle.client,
        ledger=ledger,
        bus=bus,
        store=store or CheckpointStore(run_dir.path),
        restored=restored,
        parent=parent,
        simulated=simulate,
        started_at=started_at,
        on_close=close,
        serve=lambda owner: live.serving(owner, owner.handles, run_dir.control_socket_path),
    )
    loop = asyncio.get_running_loop()

    def disk_full(error: DiskError) -> None:  # called from the writer's thread
        loop.call_soon_threadsafe(orchestrator.abort, str(error))

    reserve.on_release = disk_full
    return orchestrator


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
    return await _assemble(config=config, run_dir=run_dir, simulate=simulate, bus=bus, base_url=base_url)


async def open_prepared_run(run_dir: RunDir, *, simulate: bool) -> Orchestrator:
    """Own a run directory ``run --detach`` created (its background owner: core.remote.detach)."""
    config = load_config(run_dir.config_copy_path)
    if not run_dir.metadata_path.exists():  # where it runs is fixed now, before any call
        write_endpoint(run_dir, _endpoint(simulate, None))
    return await _assemble(config=config, run_dir=run_dir, simulate=simulate, bus=None)


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
) -> Orchestrator:
    """Continue a run in place from its latest good checkpoint, or fork it from an earlier one.

    ``simulate`` None keeps the endpoint the run was started on (see :func:`_resume_endpoint`).
    Every corrupt checkpoint passed over is named through ``on_notice``; a run none of whose
    checkpoints is usable is refused (it would buy everything again) unless ``start_over``.
    """
    notice = on_notice or log.warning
    source = RunDir.open(runs_dir, run_ref)
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
            await asyncio.to_thread(store.fork_into, checkpoint_id, target.path)
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
        restored: dict[str, SessionState] = {}
        for agent_id, checkpoint in point.agents.items():
            restored[agent_id] = SessionState.restore(checkpoint.messages, checkpoint.agent_state)
        if target is source:
            source.sweep_temp_files()
            _keep_reports_of_finished(source, restored)
            if simulate is not None:  # an explicit switch is remembered for later resumes
                write_endpoint(source, endpoint)
        return await _assemble(
            config=config,
            run_dir=target,
            simulate=endpoint.simulated,
            bus=bus,
            restored=restored,
            ledger_state=point.ledger_state,
            parent=parent,
            base_url=base_url,
            started_at=float(started) if isinstance(started, int | float) else None,
            store=target_store,
            lock=lock,
        )
    except BaseException:
        lock.release()
        raise


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
    from core.budget.estimate import estimate

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


def _keep_reports_of_finished(run_dir: RunDir, restored: dict[str, SessionState]) -> None:
    """Reports of agents not finished at the restore point are stale: move them aside."""
    for path in run_dir.reports_dir.glob("*.md"):
        state = restored.get(path.stem)
        if state is None or state.status in ("pending", "running", "paused", "pausing"):
            stale = run_dir.reports_dir / ".stale"
            stale.mkdir(mode=0o700, exist_ok=True)
            shutil.move(str(path), stale / path.name)
