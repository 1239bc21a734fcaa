"""Waiting for the app to be still: every throttled repaint done, every message handled.

The screens repaint through :mod:`tui.coalesce` (a flush at most every interval), so what they show
lags what they were told by up to an interval, and longer on a loaded machine. A snapshot or an
assertion on the screen waits for no throttle to be armed, instead of sleeping past the intervals.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from textual.app import App
from textual.pilot import Pilot

from tests.waits import WITHIN_S, until
from tui.coalesce import Coalescer, Throttle


def _throttles(holder: object) -> Iterator[Throttle]:
    """The throttles ``holder`` keeps, its coalescers' included (found by type: names may change)."""
    for value in vars(holder).values():
        if isinstance(value, Throttle):
            yield value
        elif isinstance(value, Coalescer):
            yield from _throttles(value)


def armed_throttles(app: App[Any]) -> list[str]:
    """Where a repaint is still due: widgets (on any screen, under modals too) with an armed throttle."""
    nodes = [app, *(node for screen in app.screen_stack for node in screen.walk_children(with_self=True))]
    return [repr(node) for node in nodes if any(t.armed for t in _throttles(node))]


async def settled(pilot: Pilot[Any], within: float = WITHIN_S) -> None:
    """Until no repaint is due anywhere and every queued message is handled (a flush may queue more)."""
    deadline = time.monotonic() + within
    while True:
        left = round(max(0.0, deadline - time.monotonic()), 1)
        await until(pilot, lambda: not armed_throttles(pilot.app), "every throttled repaint", left)
        await pilot.pause()
        if not armed_throttles(pilot.app):
            return
