"""Resume in place, fork from a picked checkpoint, and skip corrupt checkpoints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.cli import main
from core.control import RunStatus
from core.events import Event, RunStarted, TurnCompleted
from core.persistence.checkpoints import CheckpointStore
from core.runner import resume_run, start_run
from core.simulator import Simulator, SimulatorSettings
from tests.core import programs


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def roles_of(bodies: list[dict]) -> list[str]:
    """Which agent sent each request (its first prompt names its role)."""
    return [b["messages"][0]["content"][0]["text"].split("Your role: ")[1].split("\n")[0] for b in bodies]


async def interrupted_run(tmp_path: Path, base_url: str, stop_after_turns: int) -> Path:
    data = programs.program(
        [programs.agent("alpha"), programs.agent("beta", max_turns=4)],
        [programs.agent("gamma")],
        max_turns=2,
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True, base_url=base_url)
    seen = 0

    def watch(event: Event) -> None:
        nonlocal seen
        if isinstance(event, TurnCompleted):
            seen += 1
            if seen == stop_after_turns:
                orchestrator.stop()

    orchestrator.bus.listen(watch)
    outcome = await orchestrator.run()
    assert outcome.status is RunStatus.INTERRUPTED
    return outcome.run_dir


async def test_resume_in_place_continues_without_rerunning_finished_work(tmp_path: Path) -> None:
    async with Simulator(SimulatorSettings(seed=2, latency_ms=30), record_bodies=True) as sim:
        run_dir = await interrupted_run(tmp_path, sim.base_url, stop_after_turns=3)
        before = json.loads((run_dir / "summary.json").read_text())
        sent_before = len(sim.stats.bodies)
        finished_before = {a["id"] for a in before["agents"] if a["status"] == "completed"}

        orchestrator = await resume_run(tmp_path / "runs", run_dir.name, base_url=sim.base_url)
        started: list[RunStarted] = []
        orchestrator.bus.listen(lambda e: started.append(e) if isinstance(e, RunStarted) else None)
        outcome = await orchestrator.run()
        resumed_roles = roles_of(sim.stats.bodies[sent_before:])

    assert outcome.status is RunStatus.COMPLETED and outcome.run_dir == run_dir
    after = json.loads((run_dir / "summary.json").read_text())
    # the clock goes on from the running time of the first attempt (not from its first start)
    assert before["active_s"] > 0 and started[0].active_s == before["active_s"]
    assert after["active_s"] > before["active_s"]
    assert {a["status"] for a in after["agents"]} == {"completed"}
    assert after["cost_usd"] > before["cost_usd"] > 0, "the ledger is restored, then grows"
    for agent_id in finished_before:
        assert agent_id.title() not in resumed_roles, f"{agent_id} had finished and must not run again"
    sent = [json.dumps(body, sort_keys=True) for body in sim.stats.bodies]
    total_turns = sum(a["turns"] for a in after["agents"])
    assert total_turns == len(set(sent)), "every completed turn was sent once"
    assert len(sent) - len(set(sent)) <= 2, "only calls cancelled in flight by the stop are sent again"


async def test_fork_from_an_earlier_checkpoint_leaves_the_original_untouched(tmp_path: Path) -> None:
    async with Simulator(SimulatorSettings(seed=4), record_bodies=True) as sim:
        run_dir = await interrupted_run(tmp_path, sim.base_url, stop_after_turns=4)
        infos = CheckpointStore(run_dir).list()
        earlier = infos[1]
        original = tree_digest(run_dir)

        orchestrator = await resume_run(
            tmp_path / "runs", run_dir.name, checkpoint_id=earlier.id, base_url=sim.base_url
        )
        outcome = await orchestrator.run()

    assert outcome.status is RunStatus.COMPLETED
    assert outcome.run_dir != run_dir
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["parent"] == {"run_id": run_dir.name, "checkpoint_id": earlier.id}
    assert tree_digest(run_dir) == original, "the original run is byte-identical"
    assert (outcome.run_dir / "report.md").exists()


async def test_corrupt_checkpoints_are_listed_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Simulator(SimulatorSettings(seed=6)) as sim:
        run_dir = await interrupted_run(tmp_path, sim.base_url, stop_after_turns=4)
        infos = CheckpointStore(run_dir).list()
        newest = infos[-1]
        truncated = newest.path
        truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
        flipped = infos[-2].path
        data = bytearray(flipped.read_bytes())
        data[len(data) // 2] ^= 0x20
        flipped.write_bytes(bytes(data))

        assert main(["checkpoints", run_dir.name, "--runs-dir", str(tmp_path / "runs")]) == 0
        listing = capsys.readouterr().out
        assert listing.count("corrupt") >= 2
        assert newest.id in listing

        orchestrator = await resume_run(tmp_path / "runs", run_dir.name, base_url=sim.base_url)
        outcome = await orchestrator.run()
    assert outcome.status is RunStatus.COMPLETED


async def test_a_stop_between_an_agents_last_turn_and_its_report_loses_no_report(tmp_path: Path) -> None:
    """An agent's final checkpoint is saved before its report is written: a stop that lands between
    the two (here at its one and only turn) leaves a finished agent without a report file. The
    resume writes it, and the agent's row, so summary.json, names it (it said null)."""
    data = programs.program([programs.agent("solo")], max_turns=1)
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    orchestrator.bus.listen(lambda event: orchestrator.stop() if isinstance(event, TurnCompleted) else None)
    outcome = await orchestrator.run()
    assert outcome.status is RunStatus.INTERRUPTED
    run_dir = outcome.run_dir
    resumed = await resume_run(tmp_path / "runs", run_dir.name)
    assert (await resumed.run()).status is RunStatus.COMPLETED
    [agent] = json.loads((run_dir / "summary.json").read_text())["agents"]
    assert agent["status"] == "completed"
    assert agent["report"] is not None and (run_dir / agent["report"]).is_file()


async def test_a_checkpoint_whose_record_a_crash_lost_is_recorded_by_the_resume(tmp_path: Path) -> None:
    """kill -9 can land a checkpoint and lose the journal's record written after it: the resume
    restores from it, records it, and verify trusts it (it still names one the journal never saw)."""
    from core.persistence.rundir import RunDir
    from core.reports.verify import verify_run

    async with Simulator(SimulatorSettings(seed=2, latency_ms=30)) as sim:
        run_dir = await interrupted_run(tmp_path, sim.base_url, stop_after_turns=3)
        journal = run_dir / "events.jsonl"
        lines = journal.read_text().splitlines(keepends=True)
        last = max(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "checkpoint_saved")
        lost = json.loads(lines[last])["checkpoint_id"]
        journal.write_text("".join(lines[:last]))  # the crash: the journal ends before that record
        assert any(p.place.endswith(f"{lost}.json") for p in verify_run(RunDir(run_dir)).problems)

        orchestrator = await resume_run(tmp_path / "runs", run_dir.name, base_url=sim.base_url)
        outcome = await orchestrator.run()

    assert outcome.status is RunStatus.COMPLETED
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e["checkpoint_id"] for e in records if e["kind"] == "checkpoint_saved"].count(lost) == 1
    assert verify_run(RunDir(run_dir)).problems == []
