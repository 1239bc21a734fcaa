"""The app against a scripted run: panes fill, keys reach the run's control, quitting is safe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core import events as ev
from core.control import AgentStatus
from tests.tui.conftest import settle
from tests.tui.fakes import RUN_ID, FakeRun, at
from tests.waits import until
from tui.app import ResearchApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
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
    fake.pause_delay = 0.5  # the turn in flight takes a while to finish
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
        # while the turn in flight finishes (0.5 s), the row and the pane say "pausing"
        await until(pilot, lambda: pane.border_subtitle == "pausing…", "pausing…", within=0.4)
        assert screen.table.rows_by_id["market"].status == AgentStatus.PAUSING
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
        assert isinstance(app.screen, ConfirmScreen)
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
        assert isinstance(app.screen, ConfirmScreen)
        assert fake.calls == []
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, "the app to exit")
    assert fake.calls == [("stop", None)]
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
    async def broken() -> FakeRun:
        raise RuntimeError("run is locked by another process")

    app = make_app(control_factory=broken)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: type(app.screen).__name__ == "RunsScreen", "the runs screen")
        await pilot.press("ctrl+q")
    assert app.exit_code == 2


class PendingPausableRun(FakeRun):
    """Pauses a pending agent the way the orchestrator does: quietly, until its layer starts."""

    def pause(self, agent_id: str) -> bool:
        if self.agent_status(agent_id) is AgentStatus.PENDING:
            self.calls.append(("pause", agent_id))
            self._publish(ev.AgentPaused(run_id=RUN_ID, agent_id=agent_id, at=at(2400)))
            return True
        return super().pause(agent_id)


async def test_p_on_a_pending_agent_says_it_will_start_paused_and_p_again_undoes_it(
    make_app: Callable[..., ResearchApp], tmp_path: Path
) -> None:
    run = PendingPausableRun(run_dir=tmp_path / "run")
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
            ("market", "API call in flight is cancelled"),
        ):
            screen.table.select_agent(agent)
            await pilot.press("k")
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, ConfirmScreen)
            assert expected in str(dialog.message)
            if agent == "cross-tech":
                assert "call in flight" not in str(dialog.message)
            await pilot.press("n")
            await pilot.pause()
