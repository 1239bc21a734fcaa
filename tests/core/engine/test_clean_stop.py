"""A stop throws no paid work away: the calls in flight finish their turn and are saved, and nothing
is charged for an answer that never arrived; a second stop, or the end of the grace, cancels them
(charged their worst case, no more than the stop said it would count). A kill after its call ends the
agent the same clean way."""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

from core.control import RunStatus
from core.engine.orchestrator import Orchestrator
from core.events import Event, TextStreamed
from core.runner import resume_run, start_run
from core.simulator import Simulator, SimulatorSettings
from tests.core import programs

SLOW_STREAMS = SimulatorSettings(seed=5, latency_ms=20, tokens_per_second=1500)
"""Answers stream for a good part of a second: a stop lands in the middle of them."""


def program(tmp_path: Path, **execution: Any) -> Path:
    data = programs.program(
        [programs.agent("a"), programs.agent("b"), programs.agent("c")],
        [programs.agent("d")],
        max_turns=3,
        execution=execution,
    )
    return programs.write(tmp_path, data)


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def worst_case_charges(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "attempt_charged" and e["basis"] == "worst_case"]


def stop_mid_stream(orchestrator: Orchestrator, after_chunks: int, act: Any) -> None:
    """Call ``act`` once, from the run's loop, when so many chunks of text have streamed."""
    seen = 0
    loop = asyncio.get_running_loop()

    def listen(event: Event) -> None:
        nonlocal seen
        if isinstance(event, TextStreamed):
            seen += 1
            if seen == after_chunks:
                loop.call_soon(act)

    orchestrator.bus.listen(listen)


def sent_bodies(sim: Simulator) -> list[str]:
    return [json.dumps(body, sort_keys=True) for body in sim.stats.bodies]


async def test_a_clean_stop_lets_the_calls_in_flight_finish_and_the_resume_buys_none_again(
    tmp_path: Path,
) -> None:
    async with Simulator(SLOW_STREAMS, record_bodies=True) as sim:
        orchestrator = await start_run(
            program(tmp_path), tmp_path / "runs", simulate=True, base_url=sim.base_url
        )
        stop_mid_stream(orchestrator, 40, orchestrator.stop)
        started = time.monotonic()
        outcome = await orchestrator.run()
        took = time.monotonic() - started
        events = journal(outcome.run_dir)
        resumed = await resume_run(tmp_path / "runs", outcome.run_dir.name, base_url=sim.base_url)
        assert (await resumed.run()).status is RunStatus.COMPLETED
        sent = sent_bodies(sim)

    assert outcome.status is RunStatus.INTERRUPTED and outcome.exit_code == 130
    assert took < 60, "within the grace period"
    stopping = [e for e in events if e["kind"] == "run_stopping"]
    first = stopping[0]
    assert not first["now"] and first["in_flight"], "the stop came mid-stream and waited for the calls"
    assert first["deadline"] > first["at"]
    assert stopping[-1]["in_flight"] == [] and not any(e["now"] for e in stopping)
    assert worst_case_charges(events) == [], "a clean stop charges nothing unconfirmed"
    after = events[events.index(first) :]
    for agent in first["in_flight"]:  # each call in flight finished its turn and was saved after
        assert any(e["kind"] == "checkpoint_saved" and e.get("agent_id") == agent for e in after), agent
        kinds = [e["kind"] for e in events if e.get("agent_id") == agent]
        last_turn = len(kinds) - 1 - kinds[::-1].index("turn_completed")
        assert "checkpoint_saved" in kinds[last_turn:], (agent, kinds)
    started_after = [e for e in after if e["kind"] == "agent_started"]
    assert started_after == [], "no agent starts once the stop is asked for"
    assert len(sent) == len(set(sent)), "every request was sent once: nothing bought twice"


async def test_a_second_stop_cancels_the_calls_in_flight_charging_no_more_than_it_said(
    tmp_path: Path,
) -> None:
    async with Simulator(SLOW_STREAMS) as sim:
        orchestrator = await start_run(
            program(tmp_path), tmp_path / "runs", simulate=True, base_url=sim.base_url
        )

        def twice() -> None:
            orchestrator.stop()
            orchestrator.stop(now=True)

        stop_mid_stream(orchestrator, 40, twice)
        outcome = await orchestrator.run()
    assert outcome.status is RunStatus.INTERRUPTED
    events = journal(outcome.run_dir)
    [now] = [e for e in events if e["kind"] == "run_stopping" and e["now"]]
    charged = worst_case_charges(events)
    assert charged and {e["agent_id"] for e in charged} <= set(now["in_flight"])
    assert 0 < sum(e["cost_usd"] for e in charged) <= now["worst_case_usd"] + 1e-9


async def test_the_end_of_the_grace_cancels_the_calls_still_in_flight(tmp_path: Path) -> None:
    slow = SimulatorSettings(seed=5, latency_ms=20, tokens_per_second=40)  # an answer takes a minute
    async with Simulator(slow) as sim:
        config = program(tmp_path, stop_grace_s=0.5)
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True, base_url=sim.base_url)
        asked: list[float] = []

        def stop() -> None:
            asked.append(time.monotonic())
            orchestrator.stop()

        stop_mid_stream(orchestrator, 3, stop)
        outcome = await orchestrator.run()
        ended = time.monotonic()
    assert outcome.status is RunStatus.INTERRUPTED
    assert ended - asked[0] < 10, "the grace (0.5 s) bounds the wait"
    events = journal(outcome.run_dir)
    assert [e["now"] for e in events if e["kind"] == "run_stopping"][-1] is True
    assert worst_case_charges(events), "the calls cut off at the grace's end are charged their bound"


async def test_a_kill_after_its_call_saves_the_call_then_ends_the_agent(tmp_path: Path) -> None:
    async with Simulator(SLOW_STREAMS) as sim:
        orchestrator = await start_run(
            program(tmp_path), tmp_path / "runs", simulate=True, base_url=sim.base_url
        )
        killed: list[bool] = []

        def kill() -> None:
            killed.append(orchestrator.kill("a", now=False))

        stop_mid_stream(orchestrator, 20, kill)
        outcome = await orchestrator.run()
    assert killed == [True]
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    statuses = {a["id"]: a["status"] for a in summary["agents"]}
    assert statuses["a"] == "killed" and statuses["b"] == "completed"
    events = journal(outcome.run_dir)
    kinds = [e["kind"] for e in events if e.get("agent_id") == "a"]
    last_turn = len(kinds) - 1 - kinds[::-1].index("turn_completed")
    assert kinds[last_turn + 1] == "checkpoint_saved" and kinds[-1] == "agent_killed", kinds
    assert set(kinds[last_turn:]) == {"turn_completed", "checkpoint_saved", "agent_killed"}, "no call after"
    assert worst_case_charges(events) == [], "its call was not cut off"


async def test_a_kill_after_its_call_of_an_agent_with_no_call_in_flight_kills_it_at_once(
    tmp_path: Path,
) -> None:
    async with Simulator(SLOW_STREAMS) as sim:
        orchestrator = await start_run(
            program(tmp_path), tmp_path / "runs", simulate=True, base_url=sim.base_url
        )
        stop_mid_stream(orchestrator, 1, partial(orchestrator.kill, "d", now=False))  # not started
        outcome = await orchestrator.run()
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert {a["id"]: a["status"] for a in summary["agents"]}["d"] == "killed"
