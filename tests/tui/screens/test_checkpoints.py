"""The checkpoint browser lists a run's checkpoints per agent and resumes or forks from one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Static

from tests.tui.conftest import settle
from tests.tui.fakes import RUN_ID, FakeRun, FakeRunSource
from tests.waits import until
from tui.app import ResearchApp
from tui.data import ControlFactory
from tui.screens.checkpoints import CheckpointBrowserScreen, agent_state_at
from tui.screens.confirm import ConfirmScreen
from tui.screens.main import MainScreen


def resumer(
    calls: list[tuple[str, str | None]], new_run: FakeRun
) -> Callable[[str, str | None], ControlFactory]:
    def resume_factory(run_id: str, checkpoint_id: str | None) -> ControlFactory:
        calls.append((run_id, checkpoint_id))

        async def factory() -> FakeRun:
            return new_run

        return factory

    return resume_factory


async def open_browser(app: ResearchApp, pilot: Pilot[int], fake: FakeRun) -> CheckpointBrowserScreen:
    """The run's first frames settled, then ``c``: the checkpoint browser on the selected agent."""
    await settle(pilot, fake)
    await pilot.press("c")
    await until(pilot, lambda: isinstance(app.screen, CheckpointBrowserScreen), "the checkpoint browser")
    screen = app.screen
    assert isinstance(screen, CheckpointBrowserScreen)
    return screen


async def test_c_opens_the_selected_agents_checkpoints_latest_first_selected(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_browser(app, pilot, fake)
        assert [e.turn for e in screen.shown] == [1, 2, 3, 4]  # market's, oldest first
        assert screen.selected() is not None and screen.selected().turn == 4  # type: ignore[union-attr]
        assert str(screen.query_one("#resume", Button).label) == "Resume in place"
        await pilot.press("up")
        await pilot.pause()
        assert screen.selected().status == "corrupt"  # type: ignore[union-attr]
        assert screen.query_one("#resume", Button).disabled
        await pilot.press("up")
        await pilot.pause()
        assert str(screen.query_one("#resume", Button).label) == "Fork from here"
        hint = str(screen.query_one("#resume-hint", Static).render())
        assert "its own cap" in hint and "both runs together can exceed one cap" in hint


async def test_resume_from_an_earlier_checkpoint_stops_the_active_run_and_opens_the_fork(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    calls: list[tuple[str, str | None]] = []
    forked = FakeRun()
    app = make_app(resume_factory=resumer(calls, forked))
    async with app.run_test(size=(120, 36)) as pilot:
        await open_browser(app, pilot, fake)
        await pilot.press("up", "up")  # market t2, an earlier checkpoint
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)  # a run is active: ask before stopping it
        await pilot.press("y")

        def showing_the_fork() -> bool:
            screen = app.screen
            return forked.script_done.is_set() and isinstance(screen, MainScreen) and screen.control is forked

        await until(pilot, showing_the_fork, "the fork on screen")
        assert calls == [(RUN_ID, "cp-0003-market-t2")]
        assert ("stop", None) in fake.calls
        assert isinstance(app.screen, MainScreen) and app.screen.control is forked
        assert app.control is forked


async def test_resume_from_the_latest_checkpoint_continues_in_place(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    calls: list[tuple[str, str | None]] = []
    resumed = FakeRun()
    app = make_app(resume_factory=resumer(calls, resumed))
    async with app.run_test(size=(120, 36)) as pilot:
        await open_browser(app, pilot, fake)
        table = app.screen.query_one(DataTable)
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: resumed.script_done.is_set() and app.control is resumed, "the resumed run")
        assert calls == [(RUN_ID, None)]


async def test_the_preview_of_an_interrupted_runs_last_checkpoint_says_interrupted_not_running(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_browser(app, pilot, fake)
        preview = screen.query_one("#preview", Static)
        await until(pilot, lambda: "turn 4" in str(preview.render()), "the latest checkpoint's preview")
        head = str(preview.render()).splitlines()[0]
        assert "interrupted here" in head and "running" not in head, head
        await pilot.press("up", "up")  # an earlier checkpoint of the same agent
        await until(pilot, lambda: "turn 2" in str(preview.render()), "an earlier checkpoint's preview")
        assert "in progress" in str(preview.render()).splitlines()[0]


def test_a_finished_agents_checkpoint_says_how_it_finished() -> None:
    source = FakeRunSource()
    entry = replace(source.checkpoints[RUN_ID][0], agent_status="completed")
    assert agent_state_at(entry, True, source.runs[0]) == "completed"
    live = replace(source.runs[0], status="running")
    assert agent_state_at(source.checkpoints[RUN_ID][0], True, live) == "in progress"
