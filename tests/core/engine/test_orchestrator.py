"""The engine end to end on the simulator: layers, parallelism, reports, failures, control."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from core.control import AgentStatus, RunStatus
from core.events import AgentSkipped, AgentStarted, Event, TurnCompleted
from core.runner import start_run
from core.simulator import Simulator, SimulatorSettings
from tests.core import programs
from tests.waits import eventually


async def run_program(tmp_path: Path, data: dict, **kwargs) -> tuple:
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True, **kwargs)
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    outcome = await orchestrator.run()
    return orchestrator, outcome, events


async def test_default_program_completes_with_the_run_directory_contract(tmp_path: Path) -> None:
    config = programs.default_program_fast(tmp_path)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    outcome = await orchestrator.run()

    assert outcome.status is RunStatus.COMPLETED and outcome.exit_code == 0
    run_dir = outcome.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in (
        "run_id",
        "status",
        "cost_usd",
        "searches",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "parent",
        "agents",
    ):
        assert key in summary, key
    assert summary["status"] == "completed" and summary["parent"] is None
    assert len(summary["agents"]) == 8
    for entry in summary["agents"]:
        assert entry["status"] == "completed"
        assert set(entry) >= {"id", "layer", "status", "turns", "searches", "cost_usd", "retries", "report"}
        assert (run_dir / entry["report"]).read_text().startswith("# ")
    assert summary["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in summary["agents"]), abs=1e-4)
    final = (run_dir / "report.md").read_text()
    assert "](https://" in final and ".example/" in final and "## Sources" in final
    assert (run_dir / "config.yaml").read_text() == config.read_text()
    journal = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert journal[0]["kind"] == "run_started" and journal[-1]["kind"] == "run_finished"
    turns = sum(1 for e in journal if e["kind"] == "turn_completed")
    texts = sum(1 for e in journal if e["kind"] == "text_streamed")
    assert texts <= 3 * turns, "text deltas are coalesced, not one line per token"
    assert list((run_dir / "checkpoints").iterdir())


async def test_a_layer_runs_its_agents_in_parallel(tmp_path: Path) -> None:
    latency = {"latency_ms": 400}

    async def wall(n: int, where: str) -> float:
        data = programs.program([programs.agent(f"a{i}") for i in range(n)], max_turns=2, simulator=latency)
        started = time.perf_counter()
        _, outcome, _ = await run_program(tmp_path / where, data)
        assert outcome.status is RunStatus.COMPLETED
        return time.perf_counter() - started

    one = await wall(1, "one")
    six = await wall(6, "six")
    assert six < 2.0 * one, f"6 agents took {six:.2f}s vs {one:.2f}s for one: not parallel"


async def test_later_layers_read_the_reports_they_asked_for(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("alpha"), programs.agent("beta")],
        [programs.agent("gamma", reads=["alpha"])],
        max_turns=1,
    )
    async with Simulator(SimulatorSettings(seed=1), record_bodies=True) as sim:
        _, outcome, _ = await run_program(tmp_path, data, base_url=sim.base_url)
        bodies = list(sim.stats.bodies)
    assert outcome.status is RunStatus.COMPLETED
    first_prompts = [b["messages"][0]["content"][0]["text"] for b in bodies]
    gamma = [p for p in first_prompts if "Your role: Gamma" in p]
    assert gamma and all('<report agent="alpha">' in p for p in gamma), "gamma reads alpha's report"
    assert all('<report agent="beta">' not in p for p in gamma), "and only what it asked for"


async def test_pause_turn_continuation_resends_the_paused_content_unchanged(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("solo", brief="Survey the market. [sim:pause_turn]")], max_turns=1
    )
    async with Simulator(SimulatorSettings(seed=5), record_bodies=True) as sim:
        _, outcome, events = await run_program(tmp_path, data, base_url=sim.base_url)
        first, second = sim.stats.bodies[0], sim.stats.bodies[1]
        # The simulator answers a body deterministically: ask again for the raw paused response.
        client = AsyncAnthropic(base_url=sim.base_url, api_key="test", max_retries=0)
        raw = await client.messages.with_raw_response.create(
            **{k: v for k, v in first.items() if k != "stream"}
        )
        paused_response = json.loads(await raw.text())["content"]
        await client.close()
    assert outcome.status is RunStatus.COMPLETED
    stops = [e.stop_reason for e in events if isinstance(e, TurnCompleted)]
    assert stops[0] == "pause_turn" and stops[-1] == "end_turn"
    assert paused_response[-1]["type"] == "server_tool_use", "the pause leaves a dangling search"
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1] == {"role": "assistant", "content": paused_response}
    resent = json.dumps(second["messages"][-1]["content"], sort_keys=True)
    assert resent == json.dumps(paused_response, sort_keys=True), "every field and value, byte for byte"
    assert second["tools"] == first["tools"]


async def test_max_tokens_is_continued_within_limits(tmp_path: Path) -> None:
    data = programs.program([programs.agent("long", brief="Write at length. [sim:max_tokens]")], max_turns=1)
    orchestrator, outcome, events = await run_program(tmp_path, data)
    assert outcome.status is RunStatus.COMPLETED
    stops = [e.stop_reason for e in events if isinstance(e, TurnCompleted)]
    assert stops[0] == "max_tokens" and stops[-1] == "end_turn"
    state = orchestrator.handles["long"].state
    assert state is not None
    prompts = [m for m in state.messages if m["role"] == "user"]
    assert "Continue exactly where you stopped" in prompts[1]["content"][0]["text"]


async def test_refusal_ends_the_agent_as_refused_keeping_its_text(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("touchy", brief="Something sensitive. [sim:refusal]"), programs.agent("calm")],
        max_turns=2,
    )
    orchestrator, outcome, _ = await run_program(tmp_path, data)
    assert orchestrator.agent_status("touchy") is AgentStatus.REFUSED
    assert orchestrator.agent_status("calm") is AgentStatus.COMPLETED
    report = (outcome.run_dir / "reports" / "touchy.md").read_text()
    assert "Partial report" in report and len(report) > 200


async def test_a_failing_agent_leaves_its_siblings_running(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("doomed", brief="Doomed. [sim:fault=server_error:9]"), programs.agent("fine")],
        [programs.agent("after")],
        max_turns=2,
        execution={"retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02}},
    )
    orchestrator, outcome, _ = await run_program(tmp_path, data)
    assert orchestrator.agent_status("doomed") is AgentStatus.FAILED
    assert orchestrator.agent_status("fine") is AgentStatus.COMPLETED
    assert orchestrator.agent_status("after") is AgentStatus.COMPLETED
    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    doomed = next(a for a in summary["agents"] if a["id"] == "doomed")
    assert (
        doomed["status"] == "failed" and doomed["retries"] >= 1 and "500" in (doomed["error"] or "")
    ) or doomed["error"]


async def test_pause_holds_the_agent_at_a_turn_boundary_and_resume_continues(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("slow"), programs.agent("other")], max_turns=3, simulator={"latency_ms": 150}
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    turns: list[int] = []

    def watch(event: Event) -> None:
        if isinstance(event, AgentStarted) and event.agent_id == "slow":
            assert orchestrator.pause("slow")
        if isinstance(event, TurnCompleted) and event.agent_id == "slow":
            turns.append(event.turn or 0)

    orchestrator.bus.listen(watch)
    task = asyncio.create_task(orchestrator.run())
    await eventually(lambda: orchestrator.agent_status("other").is_final, "the other agent to finish")
    assert orchestrator.agent_status("slow") is AgentStatus.PAUSED, "the pause took hold at a turn boundary"
    paused_turns = len(turns)
    assert paused_turns <= 1, "at most the call in flight finishes after a pause"
    assert orchestrator.resume("slow")
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.status is RunStatus.COMPLETED
    assert orchestrator.agent_status("slow") is AgentStatus.COMPLETED


async def test_kill_cancels_the_call_in_flight_and_keeps_a_partial_report(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("victim"), programs.agent("survivor")], max_turns=3, simulator={"latency_ms": 300}
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)

    def watch(event: Event) -> None:
        if isinstance(event, TurnCompleted) and event.agent_id == "victim" and event.turn == 1:
            orchestrator.kill("victim")

    orchestrator.bus.listen(watch)
    outcome = await orchestrator.run()
    assert orchestrator.agent_status("victim") is AgentStatus.KILLED
    assert orchestrator.agent_status("survivor") is AgentStatus.COMPLETED
    assert orchestrator.handles["victim"].row.turn == 1
    report = (outcome.run_dir / "reports" / "victim.md").read_text()
    assert "Partial report" in report


@pytest.mark.parametrize("control", ["kill", "stop"])
async def test_an_agent_killed_or_stopped_while_it_reads_its_inputs_never_starts(
    tmp_path: Path, control: str
) -> None:
    """A kill of an agent with no task ends it at once (AgentKilled); one that came while its
    slot's owner was still reading the earlier reports must not be followed by a start."""
    data = programs.program([programs.agent("victim")], max_turns=2)
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    reading, release = asyncio.Event(), asyncio.Event()
    read = orchestrator._prior_reports

    async def slow_read(agent: Any) -> dict[str, str]:
        reading.set()
        await release.wait()
        return await read(agent)

    orchestrator._prior_reports = slow_read  # type: ignore[method-assign]
    run = asyncio.create_task(orchestrator.run())
    await asyncio.wait_for(reading.wait(), 30)
    if control == "kill":
        assert orchestrator.kill("victim")
    else:
        orchestrator.stop()
    release.set()
    outcome = await asyncio.wait_for(run, 30)

    assert not [e for e in events if isinstance(e, AgentStarted)], "it started after the " + control
    assert not [e for e in events if isinstance(e, TurnCompleted)]
    if control == "kill":
        assert orchestrator.agent_status("victim") is AgentStatus.KILLED
        assert not orchestrator.kill("victim")  # nothing left to kill
    else:
        assert outcome.status is RunStatus.INTERRUPTED


async def test_stop_interrupts_the_run_and_saves_state(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("a"), programs.agent("b")], max_turns=4, simulator={"latency_ms": 200}
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)

    def watch(event: Event) -> None:
        if isinstance(event, TurnCompleted) and event.turn == 1:
            orchestrator.stop()

    orchestrator.bus.listen(watch)
    outcome = await orchestrator.run()
    assert outcome.status is RunStatus.INTERRUPTED and outcome.exit_code == 130
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert list((outcome.run_dir / "checkpoints").iterdir())


async def test_an_agent_all_of_whose_inputs_failed_is_skipped_and_one_with_a_good_input_runs(
    tmp_path: Path,
) -> None:
    """Issue 24: a later layer does not pay to build on nothing; it says why instead."""
    broken = "Research the grid. [sim:fault=server_error:100]"  # every attempt of this request: 500
    data = programs.program(
        [programs.agent("north", broken), programs.agent("south", broken), programs.agent("east")],
        [
            programs.agent("both-failed", reads=["north", "south"]),
            programs.agent("one-good", reads=["north", "east"]),
        ],
        [programs.agent("synthesis", reads=["both-failed"])],
        execution={"retry": {"max_attempts": 2, "base_delay_s": 0.0}},
    )
    orchestrator, outcome, events = await run_program(tmp_path, data)
    statuses = {agent_id: handle.status for agent_id, handle in orchestrator.handles.items()}
    assert statuses == {
        "north": AgentStatus.FAILED,
        "south": AgentStatus.FAILED,
        "east": AgentStatus.COMPLETED,
        "both-failed": AgentStatus.SKIPPED,
        "one-good": AgentStatus.COMPLETED,
        "synthesis": AgentStatus.SKIPPED,  # its only input was skipped
    }
    started = {e.agent_id for e in events if isinstance(e, AgentStarted)}
    assert "both-failed" not in started and "synthesis" not in started
    [skipped] = [e for e in events if isinstance(e, AgentSkipped) and e.agent_id == "both-failed"]
    assert "north, south" in skipped.reason
    assert outcome.status is RunStatus.FAILED
    assert "skipped, as every input failed: both-failed, synthesis" in (outcome.message or "")
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert {a["id"]: a["status"] for a in summary["agents"]}["both-failed"] == "skipped"
