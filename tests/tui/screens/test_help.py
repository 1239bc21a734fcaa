"""Help lists the keys of the screen it opened over, read from that screen's bindings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.binding import Binding

from tests.tui.conftest import settle
from tests.tui.fakes import FakeRun, FakeRunSource
from tests.waits import until
from tui.app import ResearchApp
from tui.screens.checkpoints import CheckpointBrowserScreen
from tui.screens.help import HelpScreen, help_rows
from tui.screens.main import MainScreen
from tui.screens.report import ReportViewer
from tui.screens.runs import RunsScreen


def keys_of(screen: HelpScreen) -> dict[str, str]:
    return dict(help_rows(screen.target, screen.app))


async def test_help_on_the_run_screen_lists_every_bound_key_and_explains_the_row(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, fake)
        main = app.screen
        assert isinstance(main, MainScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = keys_of(help_screen)
        bound = {b.key for b in Binding.make_bindings(MainScreen.BINDINGS) if b.tooltip}
        shown = " ".join(keys)
        assert all(app.get_key_display(Binding(key, "")) in shown for key in bound), (bound, keys)
        assert {"o", "t", "?", "ctrl+p"} <= set(shown.split()) | {"ctrl+p"}
        legend = dict(MainScreen.HELP_LEGEND)
        assert "searches" in legend["17s"] and "turn" in legend["t8"]
        scroll = help_screen.query_one("#help-scroll")
        assert scroll.virtual_size.height <= scroll.size.height or scroll.allow_vertical_scroll


async def test_help_on_the_runs_screen_lists_the_runs_keys_not_the_agents() -> None:
    app = ResearchApp(runs_dir=Path("runs"), run_source=FakeRunSource())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        texts = " ".join(keys_of(help_screen).values())
        assert "new run" in texts and "resume the run" in texts
        assert "agent" not in texts
        assert "back to the active run" not in texts  # no run below: esc has nothing to go back to


async def test_the_footer_shows_the_runs_and_theme_keys(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, fake)
        shown = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert {"o", "t"} <= shown


async def test_question_mark_on_every_screen_lists_that_screens_keys_and_fits_80x24(
    make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    """The run screen, the checkpoint browser, the runs screen and the report viewer: all of it shown."""
    app = make_app()
    expected = {  # a key text only that screen has
        MainScreen: "pause or resume the selected agent",
        CheckpointBrowserScreen: "the latest continues the run",
        RunsScreen: "resume the run where it stopped",
        ReportViewer: "scroll the document",
    }
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, fake)
        for key, screen_type in ((None, MainScreen), ("c", CheckpointBrowserScreen), ("o", RunsScreen),
                                 ("r", ReportViewer)):  # fmt: skip
            if key is not None:
                await pilot.press(key)
            await until(pilot, lambda t=screen_type: isinstance(app.screen, t), screen_type.__name__)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), f"help on {screen_type.__name__}")
            help_screen = app.screen
            assert isinstance(help_screen, HelpScreen) and isinstance(help_screen.target, screen_type)
            texts = " ".join(keys_of(help_screen).values())
            assert expected[screen_type] in texts, (screen_type.__name__, texts)
            await pilot.pause()
            scroll, box = help_screen.query_one("#help-scroll"), help_screen.query_one("#help")
            assert scroll.virtual_size.height <= scroll.size.height, f"{screen_type.__name__}: cut off"
            assert box.region.y >= 0 and box.region.bottom <= 24 and box.region.right <= 80
            await pilot.press("escape")
            await until(pilot, lambda t=screen_type: isinstance(app.screen, t), "help closed")
            if key is not None:
                await pilot.press("escape")
                await until(pilot, lambda: isinstance(app.screen, MainScreen), "back on the run screen")
