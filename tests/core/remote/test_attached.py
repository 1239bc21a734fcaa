"""Attaching to a live run: the attached view is the owner's, and control acts on the owner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.control import AgentStatus, RunOutcome, RunStatus
from core.engine.orchestrator import Orchestrator
from core.events import Event, from_json
from core.remote.attached import attach_run
from core.remote.channel import OwnerUnreachable
from core.remote.live import LiveState
from core.runner import start_run
from core.view import RunView
from tests.core import programs
from tests.waits import until_published

pytestmark = pytest.mark.timeout(60)


def slow_program(tmp_path: Path, *, agents: tuple[str, ...] = ("alpha", "beta", "gamma")) -> Path:
    """Agents streaming at 400 tokens/s over a few turns: long enough to attach and steer."""
    data = programs.program(
        [programs.agent(a) for a in agents],
        [programs.agent("synthesis", reads=list(agents))],
        max_turns=3,
        simulator={"latency_ms": 20, "tokens_per_second": 400, "output_tokens_per_turn": [120, 200]},
    )
    return programs.write(tmp_path, data)


async def owner_serving(tmp_path: Path) -> tuple[Orchestrator, asyncio.Task[RunOutcome]]:
    owner = await start_run(slow_program(tmp_path), tmp_path / "runs", simulate=True)
    task = asyncio.create_task(owner.run())
    await until_published(
        lambda: owner.run_dir_ref.control_socket_path.exists(), owner.bus, what="the socket"
    )
    return owner, task


async def test_an_attached_run_sees_what_the_owner_sees_and_its_pause_acts_on_the_owner(
    tmp_path: Path,
) -> None:
    owner, owner_task = await owner_serving(tmp_path)
    attached = await attach_run(tmp_path / "runs", owner.run_id)
    seen: list[Event] = []
    attached.bus.listen(seen.append)
    attached_task = asyncio.create_task(attached.run())
    await until_published(
        lambda: attached.agent_status("alpha") is AgentStatus.RUNNING, attached.bus, what="alpha running"
    )

    assert attached.pause("alpha")
    await until_published(
        lambda: owner.agent_status("alpha") is AgentStatus.PAUSED, owner.bus, what="alpha paused"
    )
    await until_published(
        lambda: attached.agent_status("alpha") is AgentStatus.PAUSED, attached.bus, what="alpha seen paused"
    )
    journal = owner.run_dir_ref.events_path.read_text()
    assert '"kind": "agent_paused"' in journal and '"agent_id": "alpha"' in journal

    assert attached.resume("alpha")
    outcome = await owner_task
    attached_outcome = await attached_task
    assert outcome.status is RunStatus.COMPLETED
    assert attached_outcome.status is RunStatus.COMPLETED and not attached.owner_gone
    assert attached.view.agents == owner.view.agents  # every row: status, turns, searches, dollars
    assert attached.view.run.cost_usd == pytest.approx(outcome.cost_usd)
    assert any(e.kind == "text_streamed" for e in seen)
    assert not owner.run_dir_ref.control_socket_path.exists()


async def test_two_attached_apps_see_the_same_state_and_a_kill_from_one_reaches_the_other(
    tmp_path: Path,
) -> None:
    owner, owner_task = await owner_serving(tmp_path)
    first = await attach_run(tmp_path / "runs", owner.run_id)
    second = await attach_run(tmp_path / "runs", owner.run_id)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    await until_published(
        lambda: second.agent_status("beta") is AgentStatus.RUNNING, second.bus, what="beta running"
    )

    assert first.kill("beta")
    await until_published(
        lambda: second.agent_status("beta") is AgentStatus.KILLED, second.bus, what="beta killed"
    )
    assert owner.agent_status("beta") is AgentStatus.KILLED

    await owner_task
    await asyncio.gather(*tasks)
    assert first.view.agents == second.view.agents == owner.view.agents


async def test_a_request_the_owner_refuses_is_reported_and_changes_nothing(tmp_path: Path) -> None:
    owner, owner_task = await owner_serving(tmp_path)
    refusals: list[str] = []
    attached = await attach_run(tmp_path / "runs", owner.run_id)
    attached.on_refused = refusals.append
    attached_task = asyncio.create_task(attached.run())
    await until_published(
        lambda: attached.agent_status("alpha") is AgentStatus.RUNNING, attached.bus, what="alpha running"
    )

    assert not attached.pause("nobody")  # not an agent of this run: not even sent
    assert attached.resume("alpha")  # alpha is running: the owner says no
    await until_published(lambda: bool(refusals), attached.bus, owner.bus, what="the refusal")
    assert "cannot resume alpha" in refusals[0]
    assert owner.agent_status("alpha") in (AgentStatus.RUNNING, AgentStatus.COMPLETED)
    attached.stop()  # a stop from the attached app ends the run, state saved
    assert (await owner_task).status is RunStatus.INTERRUPTED
    assert (await attached_task).status is RunStatus.INTERRUPTED and not attached.owner_gone


async def test_attaching_to_a_run_nobody_owns_says_how_to_resume_it(tmp_path: Path) -> None:
    owner = await start_run(slow_program(tmp_path), tmp_path / "runs", simulate=True)
    owner.stop()
    await owner.run()
    with pytest.raises(OwnerUnreachable, match=f"resume {owner.run_id}"):
        await attach_run(tmp_path / "runs", owner.run_id)


def folded(events: list[Event]) -> RunView:
    return RunView.of(events)


async def test_a_snapshot_rebuilds_the_owners_view_at_every_point_of_a_real_journal(tmp_path: Path) -> None:
    """The class of the property: seeds + retained incidents + tails fold to the same view as the prefix."""
    config = programs.program(
        [programs.agent(a) for a in ("alpha", "beta", "gamma")],
        [programs.agent("synthesis", reads=["alpha", "beta", "gamma"])],
        max_turns=3,
        simulator={"faults": {"rate_limit": 0.15, "overloaded": 0.1}, "retry_after_s": 0.01},
        execution={"retry": {"base_delay_s": 0.01, "max_delay_s": 0.02}},
    )
    owner = await start_run(programs.write(tmp_path, config), tmp_path / "runs", simulate=True)
    await owner.run()
    lines = owner.run_dir_ref.events_path.read_bytes().splitlines(keepends=True)
    events = [from_json(json.loads(line)) for line in lines]
    assert any(e.kind == "retry_scheduled" for e in events), "the faults should cause retries"
    live = LiveState()
    offset = 0
    for k, (line, event) in enumerate(zip(lines, events, strict=True)):
        offset += len(line)
        live.written([event], offset)
        snapshot = json.loads(json.dumps(live.snapshot()))
        assert snapshot["offset"] == offset
        rebuilt = folded([from_json(data) for data in snapshot["events"]])
        expected = folded(events[: k + 1])
        assert rebuilt.run == expected.run, k
        assert rebuilt.agents == expected.agents, k
        assert rebuilt.budget == expected.budget, k
        assert list(rebuilt.incidents) == list(expected.incidents), k
