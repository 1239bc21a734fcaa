"""Builds a ready-to-run orchestrator for a new run or a resumed one: the composition root.

Front ends call :func:`start_run` or :func:`resume_run` and then ``await orchestrator.run()``;
they never assemble clients, ledgers or stores themselves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from anthropic import AsyncAnthropic

from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable
from core.config.loader import load_config
from core.config.model import ResearchConfig
from core.control import RunAlreadyComplete
from core.engine.orchestrator import Orchestrator
from core.engine.session import SessionState
from core.events import EventBus
from core.persistence.checkpoints import CheckpointStore
from core.persistence.journal import Journal
from core.persistence.rundir import RunDir, new_run_id, parent_record
from core.persistence.runlock import RunLock
from core.remote.live import LiveState
from core.simulator import Simulator

SIMULATED_API_KEY = "sk-ant-simulated-not-a-real-key"


class SetupError(Exception):
    """A user-facing problem found before the run starts (exit code 2)."""


@dataclass(frozen=True, slots=True)
class ClientHandle:
    client: AsyncAnthropic
    simulator: Simulator | None


def api_key_present() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN"))


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
        raise SetupError(
            "no API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL if you use a gateway), "
            "or add --simulate to run on the built-in simulator"
        )
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
) -> Orchestrator:
    lock = RunLock(run_dir.path)
    lock.acquire()
    try:
        handle = await open_client(config, simulate=simulate, base_url=base_url)
    except BaseException:
        lock.release()
        raise
    prices = PriceTable.from_config(config.pricing)
    ledger = BudgetLedger(config.execution_settings.budget, prices, n_layers=len(config.layers))
    if ledger_state:
        ledger.restore(ledger_state)
    bus = bus or EventBus()
    live = LiveState()
    journal = Journal(run_dir.events_path, on_written=live.written, prompt=live.watched)
    await journal.open()
    live.offset = journal.offset
    bus.subscribe_batches(journal, name="journal")

    async def close() -> None:
        await handle.client.close()
        if handle.simulator is not None:
            await handle.simulator.stop()
        lock.release()

    return Orchestrator(
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
    run_dir = RunDir.create(runs_dir, new_run_id(config.program.name), config_bytes)
    return await _assemble(config=config, run_dir=run_dir, simulate=simulate, bus=bus, base_url=base_url)


async def open_prepared_run(run_dir: RunDir, *, simulate: bool) -> Orchestrator:
    """Own a run directory ``run --detach`` created (its background owner: core.remote.detach)."""
    config = load_config(run_dir.config_copy_path)
    return await _assemble(config=config, run_dir=run_dir, simulate=simulate, bus=None)


async def resume_run(
    runs_dir: Path,
    run_ref: str,
    *,
    checkpoint_id: str | None = None,
    simulate: bool | None = None,
    bus: EventBus | None = None,
    base_url: str | None = None,
) -> Orchestrator:
    """Continue a run in place from its latest good checkpoint, or fork it from an earlier one."""
    source = RunDir.open(runs_dir, run_ref)
    config = load_config(source.config_copy_path)
    summary = source.read_summary() or {}
    if checkpoint_id is None and summary.get("status") == "completed":
        report = source.final_report_path
        where = f"; its report is {report}" if report.exists() else ""
        raise RunAlreadyComplete(f"run {source.run_id} is already complete{where}")
    if simulate is None:
        simulate = bool(summary.get("simulated", False))
    started = summary.get("started_at")
    store = CheckpointStore(source.path)
    infos = await asyncio.to_thread(store.list)
    good = [i for i in infos if i.status == "ok"]
    target = source
    parent = summary.get("parent")
    upto: int | None = None
    if checkpoint_id is not None:
        picked = next((i for i in infos if i.id == checkpoint_id), None)
        if picked is None:
            raise SetupError(
                f"no checkpoint {checkpoint_id!r} in run {source.run_id}: see `checkpoints {source.run_id}`"
            )
        if picked.status != "ok":
            raise SetupError(f"checkpoint {checkpoint_id} is corrupt ({picked.problem}); pick another")
        if good and picked.seq != good[-1].seq:
            target = RunDir.create(
                runs_dir, new_run_id(config.program.name), source.config_copy_path.read_bytes()
            )
            # No lock on the source: checkpoints are immutable once written and written atomically,
            # so copying a prefix is safe even while the source runs, and the source stays untouched.
            await asyncio.to_thread(store.fork_into, checkpoint_id, target.path)
            parent = parent_record(source.run_id, checkpoint_id)
            started = None  # a fork is a new run
        upto = picked.seq
    # The store that restores is the one the run saves with: it already knows each agent's chain,
    # so the first save after the resume reads nothing more (and nothing on the event loop).
    target_store = CheckpointStore(target.path)
    point = await asyncio.to_thread(target_store.restore_point, upto)
    restored: dict[str, SessionState] = {}
    for agent_id, checkpoint in point.agents.items():
        restored[agent_id] = SessionState.restore(checkpoint.messages, checkpoint.agent_state)
    if target is source:
        with RunLock(source.path):
            source.sweep_temp_files()
            _keep_reports_of_finished(source, restored)
    return await _assemble(
        config=config,
        run_dir=target,
        simulate=simulate,
        bus=bus,
        restored=restored,
        ledger_state=point.ledger_state,
        parent=parent,
        base_url=base_url,
        started_at=float(started) if isinstance(started, int | float) else None,
        store=target_store,
    )


def _keep_reports_of_finished(run_dir: RunDir, restored: dict[str, SessionState]) -> None:
    """Reports of agents not finished at the restore point are stale: move them aside."""
    for path in run_dir.reports_dir.glob("*.md"):
        state = restored.get(path.stem)
        if state is None or state.status in ("pending", "running", "paused", "pausing"):
            stale = run_dir.reports_dir / ".stale"
            stale.mkdir(mode=0o700, exist_ok=True)
            shutil.move(str(path), stale / path.name)
