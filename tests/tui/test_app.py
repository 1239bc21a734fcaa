"""The app against a scripted run: panes fill, keys reach the run's control, quitting is safe."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from threading import Event

import pytest
import yaml
from textual.widgets import Static

from core.config.loader import parse_config
from core.control import AgentStatus
from core.events import EventBus
from core.persistence.runlock import RunLocked
from core.starting import Start, StartingRun, new_run
from tests.core import programs
from tests.tui.conftest import settle
from tests.tui.fakes import RUN_ID, FakeRun
from tests.waits import until
from tui.app import ResearchApp
from tui.screens.choice import ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.incident import IncidentScreen
from tui.screens.main import MainScreen
from tui.screens.report import ReportViewer
from tui.widgets.agent_table import AgentTable
from tui.widgets.budget_meter import BudgetMeter
from tui.widgets.retry_log import RetryLog


async def test_a_pane_per_running_agent_fills_with_its_text_and_searches(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        feeds = screen.feeds
        assert set(feeds) == {"market", "chemistry", "supply-chain", "policy", "patents"}
        assert {pane.agent_id for pane in screen.shown_panes()} == set(feeds)  # all five fit
        market = feeds["market"].text
        assert '🔍 "sodium-ion grid storage tenders 2026"' in market
        assert "→ 10 results (energy-storage.example, grid-news.example, tenders.example …)" in market
        assert "Three markets stand out: China, India and the Nordics." in market
        assert "⟲ attempt abandoned (312 chars discarded)" in feeds["patents"].text
        chemistry = screen.pane("chemistry")
        assert chemistry is not None
        rendered = "\n".join(str(line) for line in chemistry.view.lines)
        assert "Hard-carbon anodes" in rendered
        table = screen.query_one(AgentTable)
        assert table.row_count == 8
        assert table.rows_by_id["market"].turn == 4 and table.rows_by_id["market"].cost_usd == 1.84
        assert table.rows_by_id["patents"].status == AgentStatus.FAILED
        assert table.rows_by_id["patents"].retries == 2
        meter = screen.query_one(BudgetMeter)
        assert meter.budget is not None and meter.budget.spent_usd == 6.3
        assert screen.query_one(RetryLog).incidents == 4  # 3 retries and the failure


async def test_enter_on_a_line_of_the_retry_log_opens_its_details(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.retry_log.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "the incident's details")
        assert isinstance(app.screen, IncidentScreen)
        assert app.screen.incident == screen.retry_log.entries[-1]


async def test_streamed_fragments_are_coalesced_into_few_repaints(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        feed = screen.feed("market")
        assert feed is not None
        fragments = sum(
            1
            for e in fake.script
            if getattr(e, "agent_id", None) == "market" and type(e).__name__ == "TextStreamed"
        )
        assert fragments > 40
        assert feed.flushes <= 5


async def test_p_pauses_the_selected_agent_then_resumes_it(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    fake.hold_pauses = True  # the turn in flight ends when the test says so
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert screen.selected_agent == "market"
        pane = screen.pane("market")
        assert pane is not None
        await pilot.press("p")
        assert fake.calls == [("pause", "market")]
        # until the turn in flight finishes, the row and the pane say "pausing"
        await until(pilot, lambda: pane.border_subtitle == "pausing…", "pausing…")
        assert screen.table.rows_by_id["market"].status == AgentStatus.PAUSING
        fake.complete_pause("market")
        await until(pilot, lambda: pane.border_subtitle == "paused", "paused")
        assert fake.agent_status("market") == AgentStatus.PAUSED
        assert screen.table.rows_by_id["market"].status == AgentStatus.PAUSED
        await until(pilot, lambda: "‖ paused" in pane.text, "the paused note")
        await pilot.press("p")
        await until(pilot, lambda: screen.table.rows_by_id["market"].status == AgentStatus.RUNNING, "running")
        assert fake.calls[-1] == ("resume", "market")
        assert fake.agent_status("market") == AgentStatus.RUNNING
        assert screen.table.rows_by_id["market"].status == AgentStatus.RUNNING


async def test_actions_follow_the_table_cursor(make_app: Callable[..., ResearchApp], fake: FakeRun) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        await pilot.press("down", "p")
        assert fake.calls == [("pause", "chemistry")]


async def test_kill_asks_first_and_n_keeps_the_agent(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)  # a running agent: kill after its call, or now
        assert fake.calls == []
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert fake.calls == []
        assert fake.agent_status("market") == AgentStatus.RUNNING


async def test_kill_confirmed_with_y_kills_the_agent(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: fake.agent_status("market") == AgentStatus.KILLED, "the kill")
        assert fake.calls == [("kill", "market")]
        assert fake.agent_status("market") == AgentStatus.KILLED
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await until(pilot, lambda: screen.table.rows_by_id["market"].status == AgentStatus.KILLED, "killed")
        pane = screen.pane("market")
        assert pane is not None and pane.border_subtitle == "killed"


async def test_quit_while_running_asks_then_stops_the_run_and_exits(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, fake)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        assert fake.calls == []
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert fake.calls == [("stop", None)]
    assert fake.stop_now == [False]  # y: the clean stop
    assert fake.saved_state
    assert app.exit_code == 130  # interrupted, resumable
    assert app.return_code == 130


async def test_quit_while_running_n_keeps_running(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, fake)
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and app.run_active
        assert isinstance(app.screen, MainScreen)
        assert fake.calls == []


async def test_quit_after_the_run_finished_exits_at_once_with_its_code(
    make_app: Callable[..., ResearchApp],
) -> None:
    finished = FakeRun(finish=True)

    async def factory() -> FakeRun:
        return finished

    app = make_app(control_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await finished.script_done.wait()
        await until(pilot, lambda: not app.run_active, "the run's end")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.exit_code == 0
    assert finished.calls == []


async def test_question_mark_opens_the_help(make_app: Callable[..., ResearchApp], fake: FakeRun) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, fake)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_the_chosen_theme_is_remembered(
    make_app: Callable[..., ResearchApp], fake: FakeRun, config_home: Path
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, fake)
        assert app.theme == "research-night"
        assert {"research-night", "research-paper", "research-ember", "research-contrast"} <= set(
            app.available_themes
        )
        await pilot.press("t")
        await pilot.pause()
        await pilot.press(*"research-paper")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "research-paper", "the theme")
    saved = json.loads((config_home / "research-orchestrator" / "settings.json").read_text())
    assert saved["theme"] == "research-paper"
    again = make_app()
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert again.theme == "research-paper"


async def test_a_run_that_cannot_start_shows_the_runs_screen_and_exits_2(
    make_app: Callable[..., ResearchApp],
) -> None:
    async def locked() -> FakeRun:
        raise RunLocked(RUN_ID, 4242, None, None)

    app = make_app(control_factory=locked)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", "the runs screen")
        await pilot.press("ctrl+q")
    assert app.exit_code == 2
    # told as the command line tells it, and no bug to report
    assert app.start_error == RunLocked(RUN_ID, 4242, None, None).describe()
    assert app.start_traceback is None


async def test_a_bug_that_stops_a_run_from_starting_is_said_to_be_one_with_its_traceback_kept(
    make_app: Callable[..., ResearchApp], caplog: pytest.LogCaptureFixture
) -> None:
    async def buggy() -> FakeRun:
        return {}["agent"]  # type: ignore[no-any-return]

    app = make_app(control_factory=buggy)
    with caplog.at_level(logging.ERROR, logger="tui.app"):
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", "the runs screen")
            await pilot.press("ctrl+q")
    assert app.exit_code == 4
    assert app.start_error is not None and app.start_error.startswith("unexpected error: KeyError: 'agent'")
    assert app.start_traceback is not None and "Traceback" in app.start_traceback
    assert "buggy" in app.start_traceback  # where it happened
    (record,) = [r for r in caplog.records if r.name == "tui.app"]
    assert record.exc_info is not None and record.exc_info[0] is KeyError


async def test_p_on_a_pending_agent_says_it_will_start_paused_and_p_again_undoes_it(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    run = FakeRun(run_dir=tmp_path / "run")  # pauses a pending agent as the orchestrator does
    notes: list[str] = []

    async def factory() -> FakeRun:
        return run

    app = make_app(control_factory=factory)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, run)
        app.notify = lambda message, **_: notes.append(str(message))  # type: ignore[method-assign]
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.table.select_agent("cross-tech")
        await pilot.press("p")
        await pilot.pause()
        assert run.agent_status("cross-tech") is AgentStatus.PAUSED
        assert screen.table.rows_by_id["cross-tech"].status is AgentStatus.PAUSED
        assert any("cross-tech has not started yet: it will start paused" in note for note in notes)
        await pilot.press("p")
        await pilot.pause()
        assert run.agent_status("cross-tech") is AgentStatus.PENDING
        assert any("cross-tech will start normally" in note for note in notes)


async def test_the_kill_dialog_says_what_happens_to_an_agent_in_its_state(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        for agent, expected in (
            ("cross-tech", "has not started"),
            ("market", "call in flight is cancelled"),
        ):
            screen.table.select_agent(agent)
            await pilot.press("k")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, ConfirmScreen | ChoiceScreen)
            assert expected in str(dialog.message)
            if agent == "cross-tech":
                assert "call in flight" not in str(dialog.message)
            await pilot.press("n")
            await pilot.pause()


def starting_fake(
    fake: FakeRun, *agents: str, start_error: Exception | None = None
) -> tuple[StartingRun, Event]:
    """A run of ``agents`` as the command line hands it to the app, assembled as ``fake`` (or failing
    with ``start_error``) once the returned event is set: until then its "SDK" is still importing."""
    release = Event()

    def load() -> Start:
        assert release.wait(timeout=30)

        async def start(bus: EventBus) -> FakeRun:
            if start_error is not None:
                raise start_error
            fake.bus = bus  # the run is started on the bus the app listens to already
            bus.listen(fake.view.apply)
            return fake

        return start

    data = programs.program([programs.agent(agent) for agent in agents])
    config = parse_config(yaml.safe_dump(data))
    return new_run(load, config, runs_dir=fake.run_dir.parent, simulated=True), release


async def test_a_starting_run_is_drawn_with_its_agents_and_connecting_before_it_exists(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    starting, release = starting_fake(fake, "alpha", "beta")

    async def factory() -> StartingRun:
        return starting

    app = make_app(control_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the run's screen")
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await until(pilot, lambda: list(screen.table.rows_by_id) == ["alpha", "beta"], "the config's agents")
        assert screen.header.info.status == "connecting" and screen.header.info.simulated
        assert fake.calls == [] and not fake.script_done.is_set()  # the run does not exist yet
        release.set()
        await settle(pilot, fake)
        assert "market" in screen.table.rows_by_id  # the run's own roster, from its run_started
        assert screen.header.info.status == "running"
        await pilot.press("ctrl+q", "y")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.exit_code == 130


async def test_quit_while_connecting_stops_the_run_as_soon_as_it_exists(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    starting, release = starting_fake(fake, "alpha")

    async def factory() -> StartingRun:
        return starting

    app = make_app(control_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the run's screen")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the quit dialog")
        await pilot.press("y")
        await pilot.pause()
        release.set()
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert fake.calls == [("stop", None)]
    assert app.exit_code == 130


async def test_a_starting_run_that_cannot_start_shows_the_runs_screen_and_exits_2(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    starting, release = starting_fake(fake, "alpha", start_error=RunLocked(RUN_ID, 4242, None, None))

    async def factory() -> StartingRun:
        return starting

    app = make_app(control_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the run's screen")
        release.set()
        await until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", "the runs screen")
        assert len(app.screen_stack) == 2  # the run's screen is gone, not left "connecting"
        await pilot.press("ctrl+q")
    assert app.exit_code == 2
    assert app.start_error == RunLocked(RUN_ID, 4242, None, None).describe()


async def test_r_at_the_end_of_a_run_opens_the_final_report_the_panel_points_at(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    finished = FakeRun(finish=True, run_dir=tmp_path / "runs" / "20261124-100212-sodium-ion-2026-3f2a")
    (finished.run_dir / "reports").mkdir(parents=True)
    (finished.run_dir / "reports" / "market.md").write_text("# Market and costs\n\nThe market report.\n")
    (finished.run_dir / "report.md").write_text("# Will sodium-ion displace LFP?\n\nThe final synthesis.\n")

    async def factory() -> FakeRun:
        return finished

    app = make_app(control_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await finished.script_done.wait()
        await until(pilot, lambda: not app.run_active, "the run's end")
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await until(
            pilot, lambda: "r opens it" in str(screen.query_one("#no-panes", Static).render()), "the end"
        )
        screen.table.select_agent("market")  # an agent with a report is selected: r still opens the final one
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReportViewer), "the report viewer")
        viewer = app.screen
        assert isinstance(viewer, ReportViewer)
        assert viewer.documents[viewer.selected].path == finished.run_dir / "report.md"
        assert "The final synthesis." in viewer._markdown()


async def test_the_palette_offers_no_pause_or_kill_for_an_agent_that_has_finished(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, fake)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        finished = next(r.agent_id for r in screen.table.rows_by_id.values() if r.status.is_final)
        running = next(r.agent_id for r in screen.table.rows_by_id.values() if r.status.is_active)
        screen.table.select_agent(finished)
        titles = [title for title, _, _ in screen.palette_commands()]
        assert not any(t.startswith(("Kill", "Pause")) for t in titles), titles
        screen.table.select_agent(running)
        titles = [title for title, _, _ in screen.palette_commands()]
        assert f"Kill {running}" in titles and f"Pause or resume {running}" in titles
