"""The app attached to a run another owner drives: it shows the owner's run and steers the owner.

The owner here is an orchestrator on this test's event loop (a detached process is the tmux test's
job); the app reaches it only through the control socket and the journal, as it would another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core import events as ev
from core.control import AgentStatus, RunOutcome, RunStatus
from core.engine.orchestrator import Orchestrator
from core.persistence.rundir import RunDir
from core.remote.attached import AttachedRun
from core.remote.live import LiveState
from core.remote.owner import live_owner
from core.runner import start_run
from tests.core import programs
from tests.core.remote.test_channel import FakeControl
from tests.tui.test_real_run import SIZE, main_screen, pane_text, until
from tui import data
from tui.app import ResearchApp
from tui.screens.choice import ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.main import MainScreen
from tui.screens.runs import RunsScreen

pytestmark = pytest.mark.timeout(90)


def program(tmp_path: Path) -> Path:
    data_ = programs.program(
        [programs.agent(a) for a in ("alpha", "beta", "gamma")],
        [programs.agent("delta", reads=["alpha", "beta", "gamma"], max_turns=1)],
        max_turns=6,
        simulator={"latency_ms": 100, "tokens_per_second": 200, "output_tokens_per_turn": [100, 200]},
    )
    return programs.write(tmp_path, data_)


async def owner_of(tmp_path: Path) -> tuple[Orchestrator, asyncio.Task[RunOutcome]]:
    owner = await start_run(program(tmp_path), tmp_path / "runs", simulate=True)
    task = asyncio.create_task(owner.run())
    changed = asyncio.Event()
    owner.bus.listen(lambda _e: changed.set())
    while not owner.run_dir_ref.control_socket_path.exists():
        await changed.wait()
        changed.clear()
    return owner, task


def attached_app(owner: Orchestrator) -> ResearchApp:
    runs = owner.run_dir.parent
    return ResearchApp(control_factory=data.attach_factory(runs, owner.run_id), runs_dir=runs)


async def streaming(pilot: Pilot[Any], app: ResearchApp) -> MainScreen:
    await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen")
    await until(pilot, lambda: len(pane_text(app, "alpha")) > 40, "alpha's stream in its pane", 20)
    return main_screen(app)


async def test_the_attached_app_streams_pauses_on_the_owner_and_detaching_leaves_the_run_running(
    tmp_path: Path,
) -> None:
    owner, owner_task = await owner_of(tmp_path)
    app = attached_app(owner)
    async with app.run_test(size=SIZE) as pilot:
        screen = await streaming(pilot, app)
        assert isinstance(app.control, AttachedRun)
        assert screen.selected_agent == "alpha"
        header = screen.header.render().plain  # the header says whose run this is
        assert f"attached · owner pid {os.getpid()}" in header, header
        await pilot.press("p")
        await until(pilot, lambda: owner.agent_status("alpha") is AgentStatus.PAUSED, "the owner pauses", 15)
        await until(
            pilot, lambda: app.control.agent_status("alpha") is AgentStatus.PAUSED, "the app shows it"
        )

        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the detach-or-stop question")
        await pilot.press("d")
        await until(pilot, lambda: not app.is_running, "the app to exit", 10)
    assert app.return_code == 0
    assert not owner_task.done()  # detaching left the run running
    note = app.detached  # printed once the terminal is restored (run_app)
    assert f"detached: run {owner.run_id} goes on in process {os.getpid()} ({owner.run_dir})" in note
    assert f"attach again: research-orchestrator attach {owner.run_id} --runs-dir " in note
    assert owner.agent_status("alpha") is AgentStatus.PAUSED
    assert owner.resume("alpha")

    again = attached_app(owner)  # attaching again: the current state, finished agents with figures
    async with again.run_test(size=SIZE) as pilot:
        await streaming(pilot, again)
        control = again.control
        assert isinstance(control, AttachedRun)
        await until(pilot, lambda: owner.view.agents == control.view.agents, "the owner's rows", 15)
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(again.screen, ChoiceScreen), "the question")
        await pilot.press("s")  # stop the run
        await until(pilot, lambda: not again.is_running, "the app to exit", 20)
    outcome = await owner_task
    assert outcome.status is RunStatus.INTERRUPTED
    assert again.outcome is not None and again.outcome.status is RunStatus.INTERRUPTED


async def test_when_the_owner_dies_the_app_says_so_and_offers_to_resume(tmp_path: Path) -> None:
    """An owner that dies closes its socket without a run_finished in the journal."""
    run_dir = tmp_path / "runs" / "20261130-010203-test-program-abcd"
    run_dir.mkdir(parents=True, mode=0o700)
    (run_dir / "config.yaml").write_text("program: {}\n")
    live = LiveState()
    started = ev.RunStarted(
        run_id=run_dir.name, program="test-program", run_dir=str(run_dir), agents=(("alpha", 1, "Alpha"),)
    )
    line = (json.dumps(started.to_json()) + "\n").encode()
    (run_dir / "events.jsonl").write_bytes(line)
    live.written([started], len(line))
    serving = live.serving(FakeControl(run_dir), ("alpha",), RunDir(run_dir).control_socket_path)
    await serving.__aenter__()
    app = ResearchApp(
        control_factory=data.attach_factory(run_dir.parent, run_dir.name), runs_dir=run_dir.parent
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen")
        await until(pilot, lambda: main_screen(app).selected_agent == "alpha", "alpha's row")
        await serving.__aexit__(None, None, None)  # the owner is gone
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the offer to resume", 20)
        assert app.outcome is not None and app.outcome.status is RunStatus.INTERRUPTED
        assert "is gone" in (app.outcome.message or "") and f"resume {run_dir.name}" in app.outcome.message
        resumed: list[str] = []
        app.resume_factory = lambda run_id, _checkpoint: (
            resumed.append(run_id) or data.attach_factory(run_dir.parent, run_id)
        )
        await pilot.press("y")
        await until(pilot, lambda: resumed == [run_dir.name], "the resume it asked for")


async def test_opening_the_app_s_own_live_run_from_the_runs_screen_goes_back_to_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    async def factory() -> Orchestrator:
        return await start_run(program(tmp_path), runs, simulate=True)

    app = ResearchApp(control_factory=factory, runs_dir=runs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await streaming(pilot, app)
        own = app.control
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        runs_screen = app.screen
        assert isinstance(runs_screen, RunsScreen)
        await until(pilot, lambda: bool(runs_screen.runs) and runs_screen.runs[0].live, "its run listed live")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen, "back on the run's own screen")
        assert app.control is own and app.run_active  # not stopped, not attached to itself
        await app.stop_run()


async def test_the_new_run_dialog_starts_a_detached_run_and_attaches_to_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    app = ResearchApp(runs_dir=runs, config_path=program(tmp_path), simulate=True)
    pid: int | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "start here or detached?")
            await pilot.press("d")
            await streaming(pilot, app)  # the owner starts in the background, then the app attaches
            control = app.control
            assert isinstance(control, AttachedRun)
            pid = control.owner_pid
            assert pid is not None and pid != os.getpid()
            await pilot.press("ctrl+q")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "detach or stop?")
            await pilot.press("d")
            await until(pilot, lambda: not app.is_running, "the app to exit", 10)
        owner = live_owner(control.run_dir)
        assert owner is not None and owner.pid == pid  # the run goes on without the app
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
