"""Shared fixtures: a private config dir per test, a scripted run, and an app driving it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.fakes import NOW, FakeRun, FakeRunSource
from tests.tui.tmux import TmuxServer
from tests.tui.waits import settled
from tui.app import ResearchApp
from tui.screens.main import MainScreen


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings and user themes go to a temporary dir, never the developer's own."""
    home = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def fake(tmp_path: Path) -> FakeRun:
    return FakeRun(run_dir=tmp_path / "runs" / "20261124-100212-sodium-ion-2026-3f2a")


@pytest.fixture
def make_app(fake: FakeRun) -> Callable[..., ResearchApp]:
    def make(**kwargs: object) -> ResearchApp:
        async def factory() -> FakeRun:
            return fake

        options: dict[str, object] = {
            "control_factory": factory,
            "run_source": FakeRunSource(),
            "clock": lambda: NOW,
            "runs_dir": fake.run_dir.parent,
        }
        options.update(kwargs)
        return ResearchApp(**options)  # type: ignore[arg-type]

    return make


async def settle(pilot: Pilot[Any], fake: FakeRun) -> None:
    """Wait until the script is published and every coalesced repaint has reached the screen."""
    await fake.script_done.wait()
    await settled(pilot)
    screen = pilot.app.screen
    if isinstance(screen, MainScreen):  # which panes show follows activity every few seconds: now
        screen.rotate_panes()
    await settled(pilot)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[TmuxServer]:
    """A private tmux server (its own socket, no user config), killed after the test."""
    server = TmuxServer(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg-config")})
    try:
        yield server
    finally:
        server.kill()
