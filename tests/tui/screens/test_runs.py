"""With no run, the app opens the runs list: open, resume, or start a new run after the estimate."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from rich.console import Console, RenderableType

from core.remote.owner import LiveOwner
from tests.tui.fakes import RUN_ID, FakeRun, FakeRunSource
from tests.waits import until
from tui.app import ResearchApp
from tui.data import ControlFactory, load_estimate
from tui.screens.choice import ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.main import MainScreen
from tui.screens.report import ReportViewer
from tui.screens.runs import RunsScreen
from tui.widgets.estimate_view import estimate_view

CONFIG = Path(__file__).resolve().parents[3] / "research_config.yaml"


def plain(renderable: RenderableType, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_the_estimate_fits_an_80_column_dialog_without_wrapping_a_row() -> None:
    estimate = load_estimate(CONFIG)
    assert not isinstance(estimate, str)
    text = plain(estimate_view(estimate), 74)  # the dialog's inside at 80 columns
    lines = text.splitlines()
    for agent in estimate.agents:
        row = next(line for line in lines if line.strip().startswith(agent.agent_id))
        assert f"{agent.usd.expected:,.2f}" in row and f"{agent.searches.high:.0f}" in row
    assert all(len(line.rstrip()) <= 74 for line in lines)
    table_rows = [line for line in lines if "." in line and line[:1] in (" ", "L", "t")]
    assert len(table_rows) >= len(estimate.agents) + len(estimate.layers) + 1


def runs_app(started: list[Path], resumed: list[tuple[str, str | None]], run: FakeRun) -> ResearchApp:
    def start_factory(config: Path) -> ControlFactory:
        started.append(config)

        async def factory() -> FakeRun:
            return run

        return factory

    def resume_factory(run_id: str, checkpoint_id: str | None) -> ControlFactory:
        resumed.append((run_id, checkpoint_id))

        async def factory() -> FakeRun:
            return run

        return factory

    return ResearchApp(
        runs_dir=Path("runs"),
        config_path=CONFIG,
        run_source=FakeRunSource(),
        start_factory=start_factory,
        resume_factory=resume_factory,
    )


async def test_new_run_shows_the_estimate_and_starts_only_when_confirmed() -> None:
    started: list[Path] = []
    run = FakeRun()
    app = runs_app(started, [], run)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert app.screen.query_one("DataTable").row_count == 2  # type: ignore[attr-defined]
        await pilot.press("n")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ChoiceScreen)  # start here, start detached, or cancel
        assert "Cost estimate for sodium-ion-2026" in plain(confirm.message, 76)
        await pilot.press("n")
        await pilot.pause()
        assert started == []
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: run.script_done.is_set() and isinstance(app.screen, MainScreen), "the run")
        assert started == [CONFIG]


async def test_r_resumes_the_highlighted_run_and_enter_opens_its_documents(tmp_path: Path) -> None:
    resumed: list[tuple[str, str | None]] = []
    run = FakeRun()
    app = runs_app([], resumed, run)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ReportViewer)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        assert resumed == []  # a resume can spend money: nothing before the answer
        await pilot.press("y")
        await until(pilot, lambda: run.script_done.is_set() and isinstance(app.screen, MainScreen), "the run")
        assert resumed == [(RUN_ID, None)]


async def test_home_and_end_move_to_the_first_and_last_run_and_a_resume_names_the_run_and_asks(
    tmp_path: Path,
) -> None:
    resumed: list[tuple[str, str | None]] = []
    run = FakeRun()
    app = runs_app([], resumed, run)
    source = app.run_source
    assert isinstance(source, FakeRunSource)
    last = replace(source.runs[0], run_id="20261122-090000-sodium-ion-2026-77aa", cost_usd=12.5)
    source.runs.append(last)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("end")
        assert screen.selected() == last
        await pilot.press("home")
        assert screen.selected() == source.runs[0]
        await pilot.press("end", "r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert last.run_id in confirm.title_text and "$12.50" in str(confirm.message)
        await pilot.press("n")  # no: nothing resumed, back on the list
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        assert resumed == []
        await pilot.press("r", "y")
        await until(pilot, lambda: resumed != [], "the resume")
        assert resumed == [(last.run_id, None)]


async def test_a_live_run_is_marked_with_its_owner_and_opening_it_attaches(tmp_path: Path) -> None:
    source = FakeRunSource()
    live = tmp_path / "runs" / RUN_ID
    live.mkdir(parents=True)
    (live / "config.yaml").write_text("program: {}\n")
    source.runs[0] = replace(source.runs[0], status="running", path=live, owner=LiveOwner(4242, serving=True))
    app = ResearchApp(runs_dir=tmp_path / "runs", config_path=CONFIG, run_source=source)
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("DataTable")
        cells = [str(cell) for cell in table.get_row_at(0)]  # type: ignore[attr-defined]
        assert any("● live pid 4242" in cell and "running" in cell for cell in cells), cells
        await pilot.press("enter")  # attaches (here nobody serves the run: the app says so)
        await until(pilot, lambda: app.start_error, "the app to say why it cannot attach")
        assert app.start_error is not None and f"run {RUN_ID} is not live" in app.start_error
        assert not isinstance(app.screen, ReportViewer)  # not the documents of a finished run
