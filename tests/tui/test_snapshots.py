"""What the screens look like, fed by the scripted run with frozen time (review SVGs before updating)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import settle
from tests.tui.fakes import FakeRun
from tui.app import ResearchApp

SnapCompare = Callable[..., bool]


def _before(fake: FakeRun, *keys: str) -> Callable[[Pilot[Any]], Any]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot, fake)
        if keys:
            await pilot.press(*keys)
            await pilot.pause(0.3)
            await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun, size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_before(fake))


def test_main_screen_with_a_paused_agent(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=_before(fake, "down", "p"))


def test_kill_confirmation(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=_before(fake, "k"))


def test_checkpoint_browser(
    snap_compare: SnapCompare, make_app: Callable[..., ResearchApp], fake: FakeRun
) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 36), run_before=_before(fake, "c"))
