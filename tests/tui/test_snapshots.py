"""What the screens look like, fed by the scripted run with frozen time (review SVGs before updating)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from core.control import AgentStatus
from tests.tui.conftest import settle
from tests.tui.fakes import RUN_ID, FakeRun, FakeRunSource
from tests.tui.waits import settled
from tests.waits import until
from tui.app import ResearchApp
from tui.screens.main import MainScreen

SnapCompare = Callable[..., bool]
CONFIG = Path(__file__).resolve().parents[2] / "research_config.yaml"


def _before(
    fake: FakeRun, *keys: str, done: Callable[[], object] = lambda: True, what: str = ""
) -> Callable[[Pilot[Any]], Any]:
    """Settle the scripted run, press ``keys``, wait until ``done()`` (``what`` they lead to) and
    every repaint it causes."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot, fake)
        await settled(pilot)
        if keys:
            await pilot.press(*keys)
            await until(pilot, done, what)
            await settled(pilot)

    return run_before


def paused(fake: FakeRun) -> bool:
    """Every agent the app asked to pause has paused (the fake takes a moment, as a run does)."""
    asked = [agent for call, agent in fake.calls if call == "pause" and agent is not None]
    return bool(asked) and all(fake.agent_status(agent) is AgentStatus.PAUSED for agent in asked)


def test_main_screen_with_a_paused_agent(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(
        make_app(),
        terminal_size=(120, 36),
        run_before=_before(fake, "down", "p", done=lambda: paused(fake), what="the agent to pause"),
    )


def test_kill_confirmation(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before(fake, "k"))


def test_checkpoint_browser(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=_before(fake, "c"))


THEMES = ("research-night", "research-paper", "research-ember", "research-contrast")


def _themed(fake: FakeRun, theme: str, *keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.theme = theme
        await _before(fake, *keys)(pilot)

    return run_before


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen_in_every_theme(
    snap_compare: SnapCompare,
    make_app: Callable[..., ResearchApp],
    fake: FakeRun,
    size: tuple[int, int],
    theme: str,
) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_themed(fake, theme))


def test_retry_lines_take_the_new_theme_after_a_switch(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot, fake)  # the retry lines are written in the dark theme
        pilot.app.theme = "research-paper"
        await settled(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=run_before)


def test_a_retry_lines_details(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(
        make_app(), terminal_size=(80, 24), run_before=_before(fake, "l", "up", "up", "enter")
    )


def test_help_on_the_run_screen(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_before(fake, "question_mark"))


def test_help_on_the_runs_screen(snap_compare: SnapCompare) -> None:
    app = ResearchApp(runs_dir=Path("runs"), run_source=FakeRunSource())
    assert snap_compare(app, terminal_size=(80, 24), press=["question_mark"])


def test_the_estimate_dialog_at_80_columns(
    snap_compare: SnapCompare, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(CONFIG.parent)  # the dialog names the config as given: the same in every checkout
    app = ResearchApp(runs_dir=Path("runs"), run_source=FakeRunSource(), config_path=Path(CONFIG.name))
    assert snap_compare(app, terminal_size=(80, 24), press=["n"])


class TwoRunsSource(FakeRunSource):
    """Two runs of one program (their ids differ only in time and suffix), each with checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        other = self.runs[1].run_id
        self.checkpoints[other] = [
            replace(entry, id=entry.id.replace("cp-", "cq-"), agent_cost_usd=round(entry.cost_usd / 3, 2))
            for entry in self.checkpoints[RUN_ID][:3]
        ]
        spent: dict[str, float] = {}
        entries = []
        for entry in self.checkpoints[RUN_ID]:
            spent[entry.agent_id] = spent.get(entry.agent_id, 0.0) + 0.3
            entries.append(replace(entry, agent_cost_usd=round(spent[entry.agent_id], 2)))
        final = replace(entries[-1], id="cp-0007-market-t4", seq=7, agent_status="completed")
        self.checkpoints[RUN_ID] = [*entries, final]  # the final checkpoint repeats the last turn's


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_the_checkpoint_browser_with_two_runs_of_one_program(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun, size: tuple[int, int]
) -> None:
    app = make_app(run_source=TwoRunsSource())
    assert snap_compare(app, terminal_size=size, run_before=_before(fake, "c"))


def test_a_pane_restored_after_maximising_rewraps_what_streamed_meanwhile(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot, fake)
        await pilot.press("f")
        await settled(pilot)
        screen = pilot.app.screen
        assert isinstance(screen, MainScreen)
        screen.stream_text("market", "\n\nWhile maximised: " + "tender prices in the Nordics fell again " * 6)
        screen.stream_turn_ended("market", True)
        await settled(pilot)
        await pilot.press("escape")
        await settled(pilot)

    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=run_before)
