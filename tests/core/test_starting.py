"""A run shown before it exists: its agents at once, its assembly (the SDK's import) off the loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml

from core.config.loader import parse_config
from core.control import AgentStatus, RunOutcome, RunStatus
from core.events import EventBus
from core.persistence.runlock import RunLocked
from core.starting import CONNECTING, NEW_RUN_ID, Start, StartingRun, new_run, resumed_run
from tests.core import programs


class Assembled:
    """The run once assembled: records the control calls it receives."""

    def __init__(self, bus: EventBus, run_dir: Path) -> None:
        self.bus, self.run_id, self.run_dir = bus, run_dir.name, run_dir
        self.calls: list[tuple[str, str | None]] = []

    async def run(self) -> RunOutcome:
        self.calls.append(("run", None))
        status = RunStatus.INTERRUPTED if ("stop", None) in self.calls else RunStatus.COMPLETED
        return RunOutcome(status, self.run_dir, 0.0)

    def pause(self, agent_id: str) -> bool:
        self.calls.append(("pause", agent_id))
        return True

    def resume(self, agent_id: str) -> bool:
        self.calls.append(("resume", agent_id))
        return True

    def kill(self, agent_id: str) -> bool:
        self.calls.append(("kill", agent_id))
        return True

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def agent_status(self, agent_id: str) -> AgentStatus:
        return AgentStatus.RUNNING


class Loader:
    """``load`` for a :class:`StartingRun`: notes the thread it ran on, waits until released."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.release = threading.Event()
        self.thread: int | None = None
        self.made: list[Assembled] = []

    def __call__(self) -> Start:
        self.thread = threading.get_ident()
        assert self.release.wait(timeout=30)

        async def start(bus: EventBus) -> Assembled:
            self.made.append(Assembled(bus, self.run_dir))
            return self.made[-1]

        return start


def config_of(*agents: str) -> str:
    return yaml.safe_dump(programs.program([programs.agent(a) for a in agents]))


def test_a_new_run_is_shown_with_its_program_and_every_agent_pending(tmp_path: Path) -> None:
    config = parse_config(config_of("alpha", "beta"))
    run = new_run(Loader(tmp_path), config, runs_dir=tmp_path, simulated=True)
    assert run.preview.status == CONNECTING and run.preview.program == "test-program"
    assert run.preview.simulated and run.preview.layers == 1
    assert run.run_id == NEW_RUN_ID and run.run_dir == tmp_path
    assert [(row.agent_id, row.layer, row.status) for row in run.agents] == [
        ("alpha", 1, AgentStatus.PENDING),
        ("beta", 1, AgentStatus.PENDING),
    ]
    resumed = resumed_run(Loader(tmp_path), "20261207-run", runs_dir=tmp_path)
    assert resumed.run_id == "20261207-run" and resumed.agents == ()  # its rows come with run_started


async def test_it_is_assembled_in_a_worker_thread_while_the_loop_goes_on(tmp_path: Path) -> None:
    load = Loader(tmp_path / "runs" / "20261207-new")
    run = new_run(load, parse_config(config_of("alpha")), runs_dir=tmp_path / "runs", simulated=False)
    assembling = asyncio.ensure_future(run.assembled())
    for _ in range(5):  # the loop keeps turning while the load waits
        await asyncio.sleep(0.01)
    assert not assembling.done()
    assert run.agent_status("alpha") == AgentStatus.PENDING
    assert not run.pause("alpha") and not run.kill("alpha") and not run.resume("alpha")
    load.release.set()
    assembled = await assembling
    assert load.thread is not None and load.thread != threading.get_ident()
    assert assembled.bus is run.bus  # the app's listeners, attached early, hear the run's events
    assert (run.run_id, run.run_dir) == ("20261207-new", tmp_path / "runs" / "20261207-new")
    assert run.pause("alpha") and assembled.calls == [("pause", "alpha")]
    outcome = await run.run()
    assert outcome.status == RunStatus.COMPLETED and assembled.calls[-1] == ("run", None)


async def test_a_stop_before_it_exists_is_carried_out_when_it_does(tmp_path: Path) -> None:
    load = Loader(tmp_path / "r")
    run = StartingRun(load, runs_dir=tmp_path, preview=resumed_run(load, "r", runs_dir=tmp_path).preview)
    running = asyncio.ensure_future(run.run())
    await asyncio.sleep(0.01)
    run.stop()
    load.release.set()
    outcome = await running
    assert load.made[0].calls == [("stop", None), ("run", None)]  # nothing is sent after a stop
    assert outcome.status == RunStatus.INTERRUPTED


async def test_its_start_error_is_raised_by_assembled(tmp_path: Path) -> None:
    def load() -> Start:
        async def start(bus: EventBus) -> Assembled:
            raise RunLocked("r", 4242, None, None)

        return start

    run = resumed_run(load, "r", runs_dir=tmp_path)
    with pytest.raises(RunLocked):
        await run.assembled()
