"""Agent lifecycles: when ``run()`` returns, for any reason, nothing of the run is still alive.

An agent still waiting for its concurrency slot when the run ends early must not start a turn,
write a checkpoint or a report after ``run_finished``, and ``summary.json`` must end with a final
run status and no agent ``running``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from core.control import AgentStatus, RunStatus
from core.engine import orchestrator as orchestrator_module
from core.events import AgentStarted, Event, TurnCompleted
from core.persistence.atomic import DiskError
from core.runner import start_run
from tests.core import programs

ACTIVE = {s.value for s in AgentStatus if s.is_active}


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def assert_nothing_after_the_end(run_dir: Path) -> dict[str, Any]:
    events = journal(run_dir)
    assert events[-1]["kind"] == "run_finished", [e["kind"] for e in events[-3:]]
    finished_at = (run_dir / "events.jsonl").stat().st_mtime
    written = [
        p for p in run_dir.rglob("*") if p.is_file() and p.name not in ("events.jsonl", "run.lock", "run.log")
    ]
    late = [str(p.relative_to(run_dir)) for p in written if p.stat().st_mtime > finished_at]
    assert late == [], f"written after run_finished: {late}"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] != "running"
    assert [a["id"] for a in summary["agents"] if a["status"] in ACTIVE] == []
    return summary


async def test_a_failed_report_write_ends_the_run_and_the_agent_waiting_for_a_slot_never_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = programs.program(
        [programs.agent("first"), programs.agent("second")],
        max_turns=2,
        execution={"max_concurrent_agents": 1},
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    real_write = orchestrator_module.write_atomic_async

    async def failing_report_write(path: Path, data: bytes, **kwargs: Any) -> None:
        if path.name == "first.md":
            raise DiskError(path, f"{path} could not be written (injected)")
        await real_write(path, data, **kwargs)

    monkeypatch.setattr(orchestrator_module, "write_atomic_async", failing_report_write)
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    outcome = await orchestrator.run()

    assert outcome.status is RunStatus.FAILED and "first.md" in (outcome.message or "")
    started = {e.agent_id for e in events if isinstance(e, AgentStarted)}
    assert started == {"first"}, "the agent waiting for its slot never starts"
    summary = assert_nothing_after_the_end(outcome.run_dir)
    assert {a["id"]: a["status"] for a in summary["agents"]}["second"] == "pending"
    assert not (outcome.run_dir / "reports" / "second.md").exists()


async def test_a_rejected_key_aborts_the_run_while_another_agent_waits_for_its_slot(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("first"), programs.agent("second"), programs.agent("third")],
        execution={"max_concurrent_agents": 1},
        simulator={"api_keys": ["sk-ant-not-the-one-we-send"]},
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    outcome = await orchestrator.run()

    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
    summary = assert_nothing_after_the_end(outcome.run_dir)
    statuses = {a["id"]: a["status"] for a in summary["agents"]}
    assert statuses == {"first": "failed", "second": "pending", "third": "pending"}


async def test_a_stop_interrupts_running_agents_and_leaves_none_running(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("a"), programs.agent("b"), programs.agent("c")],
        max_turns=4,
        execution={"max_concurrent_agents": 2},
        simulator={"latency_ms": 100},
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)

    def stop_after_the_first_turn(event: Event) -> None:
        if isinstance(event, TurnCompleted):
            orchestrator.stop()

    orchestrator.bus.listen(stop_after_the_first_turn)
    outcome = await orchestrator.run()

    assert outcome.status is RunStatus.INTERRUPTED
    summary = assert_nothing_after_the_end(outcome.run_dir)
    statuses = sorted(a["status"] for a in summary["agents"])
    assert statuses.count("interrupted") == 2 and statuses.count("pending") == 1
    assert all(orchestrator.agent_status(a) is AgentStatus(s) for a, s in _statuses(summary).items())


async def test_cancelling_run_interrupts_it_saves_the_summary_and_propagates(tmp_path: Path) -> None:
    data = programs.program([programs.agent("a")], max_turns=4, simulator={"latency_ms": 200})
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    first_turn = asyncio.Event()
    orchestrator.bus.listen(lambda e: first_turn.set() if isinstance(e, TurnCompleted) else None)
    task = asyncio.create_task(orchestrator.run())
    await first_turn.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    summary = assert_nothing_after_the_end(orchestrator.run_dir)
    assert summary["status"] == "interrupted"
    assert _statuses(summary) == {"a": "interrupted"}


def _statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {a["id"]: a["status"] for a in summary["agents"]}
