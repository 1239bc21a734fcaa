"""A full disk at any write: the turn that arrived is kept, the run stops cleanly, nothing is bought twice.

As SQLite tests I/O errors, the disk fills at every write point of a run in turn (the k-th write
and every one after it find no space, until the run's space reserve is given back; then only the
reserve's bytes are free). After the stop and a resume with space:

- no request body is sent twice: the stop is clean, so the calls in flight at the stop finish their
  turn and are saved with the space the run's reserve gave back;
- ``summary.json``'s cost equals the sum of its agents, and equals the simulator's own billed usage
  of every response the run accounted for, priced independently from the simulator's records, plus
  the charges of the calls the stop cut off; it is never less than everything the simulator billed.
"""

from __future__ import annotations

import errno
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.budget.pricing import PriceTable
from core.config.loader import load_config
from core.control import RunStatus
from core.events import AttemptCharged, Event, TurnCompleted
from core.persistence import atomic
from core.persistence.atomic import RESERVE_NAME, DiskError
from core.persistence.checkpoints import CheckpointStore
from core.runner import resume_run, start_run
from core.simulator import Simulator, SimulatorSettings
from core.usage import TokenUsage
from tests.core import programs

RESERVE = 1024 * 1024


class FullDisk:
    """Counts write points; from the ``fail_at``-th on, there is no space beyond a released reserve."""

    def __init__(self, real: Any, fail_at: int | None) -> None:
        self.real = real
        self.fail_at = fail_at
        self.count = 0
        self.free: int | None = None  # bytes the released reserve gave back
        self.runs: Path | None = None

    def reserve_released(self) -> bool:
        assert self.runs is not None
        runs = [p for p in self.runs.iterdir() if not p.name.startswith(".")] if self.runs.exists() else []
        return bool(runs) and not (runs[0] / RESERVE_NAME).exists()

    def __call__(self, fd: int, data: bytes) -> None:
        self.count += 1
        if self.fail_at is None or self.count < self.fail_at:
            return self.real(fd, data)  # type: ignore[no-any-return]
        if self.free is None and self.reserve_released():
            self.free = RESERVE
        if self.free is not None and len(data) <= self.free:
            self.free -= len(data)
            return self.real(fd, data)  # type: ignore[no-any-return]
        raise OSError(errno.ENOSPC, "No space left on device")


def program(tmp_path: Path) -> Path:
    data = programs.program([programs.agent("a"), programs.agent("b")], [programs.agent("c")], max_turns=2)
    return programs.write(tmp_path, data)


async def attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int | None) -> tuple[int, str]:
    """One run with the disk filling at write ``fail_at``, then a resume with space; checks the ledger."""
    config = program(tmp_path)
    runs = tmp_path / "runs"
    disk = FullDisk(atomic.write_all, fail_at)
    disk.runs = runs
    monkeypatch.setattr(atomic, "write_all", disk)
    monkeypatch.setattr(atomic, "RESERVE_BYTES", RESERVE)
    monkeypatch.setattr(atomic.SpaceReserve.__init__, "__defaults__", (RESERVE,))
    accounted: dict[str, tuple[str, str | None]] = {}  # request id -> (agent, model)
    charged: list[float] = []  # calls cut off by the stop: charged their bound

    def account(event: Event) -> None:
        if isinstance(event, TurnCompleted) and event.request_id:
            accounted[event.request_id] = (str(event.agent_id), event.model)
        elif isinstance(event, AttemptCharged):
            charged.append(event.cost_usd)

    async with Simulator(SimulatorSettings(seed=5), record_bodies=True) as sim:
        try:
            orchestrator = await start_run(config, runs, simulate=True, base_url=sim.base_url)
        except DiskError as error:
            assert "disk is full" in str(error) and not sim.stats.requests
            return disk.count, "refused at creation"
        orchestrator.bus.listen(account)
        outcome = await orchestrator.run()
        if outcome.status is not RunStatus.COMPLETED:
            assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
            assert outcome.message and "disk is full" in outcome.message and "resume" in outcome.message
        first_session = set(accounted)
        writes = disk.count
        monkeypatch.setattr(atomic, "write_all", disk.real)  # space again
        if outcome.status is not RunStatus.COMPLETED:
            resumed = await resume_run(runs, outcome.run_dir.name, base_url=sim.base_url)
            resumed.bus.listen(account)
            assert (await resumed.run()).status is RunStatus.COMPLETED
        records = list(sim.stats.recent)

    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in summary["agents"]), abs=1e-5)
    assert all(info.ok for info in CheckpointStore(outcome.run_dir).list())

    prices = PriceTable.from_config(load_config(config).pricing)
    billed = {r.request_id: r for r in records if r.status == 200 and r.fault is None and r.usage is not None}
    assert set(accounted) <= set(billed), "every turn the run accounted for was billed"
    priced = sum(
        prices.cost(model or "", TokenUsage.from_api(billed[rid].usage))
        for rid, (_, model) in accounted.items()
    )
    assert summary["cost_usd"] == pytest.approx(priced + sum(charged), abs=1e-5)
    model = load_config(config).defaults.model  # every agent of the program uses it
    everything = sum(prices.cost(model, TokenUsage.from_api(r.usage)) for r in records if r.usage is not None)
    assert summary["cost_usd"] >= everything - 1e-6, (  # summary.json rounds dollars to 6 decimals
        "calls in flight at the stop are charged at least their bill"
    )

    # The stop is a clean one: a call in flight when the disk filled finished its turn and was saved
    # in the space the reserve gave back, so every answer billed was accounted, and none bought twice.
    in_flight = [rid for rid in billed if rid not in accounted]
    assert in_flight == [], "an answer that arrived was thrown away"
    sent = Counter(r.body_sha256 for r in billed.values())
    repeated = {body for body, times in sent.items() if times > 1}
    assert repeated == set(), "a turn that arrived and was kept was bought again"
    assert first_session <= set(accounted)
    return writes, outcome.status.value


async def test_the_write_points_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes, status = await attempt(tmp_path, monkeypatch, None)
    assert status == "completed" and writes > 10


@pytest.mark.slow
async def test_a_full_disk_at_every_write_point_loses_and_rebuys_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total, _ = await attempt(tmp_path / "probe", monkeypatch, None)
    outcomes: Counter[str] = Counter()
    for fail_at in range(1, total + 1):
        with monkeypatch.context() as patch:
            _, status = await attempt(tmp_path / f"at-{fail_at}", patch, fail_at)
        outcomes[status] += 1
    assert outcomes["failed"] >= total // 2, outcomes  # most write points stop the run (exit 4)
