"""Waiting on conditions, never on fixed sleeps: poll until something holds, fail naming it.

A fixed sleep is both slow (it always costs its full length) and flaky (on a loaded machine what
it stood for may take longer). These poll a condition instead, under a generous ceiling that costs
nothing when the condition comes quickly, and fail saying what never came. Shared by core and tui
tests, so nothing here imports textual: anything with ``pause(seconds)`` (a Textual ``Pilot``)
can drive the asynchronous wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

WITHIN_S = 30.0  # far beyond any wait on a loaded 2-core CI machine, and free when it passes
POLL_S = 0.02  # conditions here are cheap: a file, a status, a widget


class Pauser(Protocol):
    """What lets an app run for a while: a Textual ``Pilot``."""

    def pause(self, delay: float | None = None) -> Awaitable[None]: ...


class Publisher(Protocol):
    """What calls listeners inline on every event: ``core.events.EventBus``."""

    def listen(self, listener: Callable[[Any], object], *, name: str | None = None) -> None: ...


def _timed_out(what: str, within: float, detail: Callable[[], object] | None) -> AssertionError:
    extra = f"\n{detail()}" if detail is not None else ""
    return AssertionError(f"timed out after {within} s waiting for {what}{extra}")


def wait_until(
    condition: Callable[[], T],
    what: str,
    within: float = WITHIN_S,
    *,
    poll: float = POLL_S,
    detail: Callable[[], object] | None = None,
) -> T:
    """Block until ``condition()`` is truthy and return it; after ``within`` s fail naming ``what``
    (and showing ``detail()``). For a test's own thread: a subprocess, a file, a terminal."""
    deadline = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise _timed_out(what, within, detail)
        time.sleep(poll)
    return value


async def _poll(
    pause: Callable[[float], Awaitable[object]], condition: Callable[[], T], what: str, within: float
) -> T:
    deadline = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise _timed_out(what, within, None)
        await pause(POLL_S)
    return value


async def eventually(condition: Callable[[], T], what: str, within: float = WITHIN_S) -> T:
    """Let the event loop run until ``condition()`` is truthy and return it; fail naming ``what``."""
    return await _poll(asyncio.sleep, condition, what, within)


async def until(pilot: Pauser, condition: Callable[[], T], what: str, within: float = WITHIN_S) -> T:
    """Let the app ``pilot`` drives run until ``condition()`` is truthy; return it or fail naming ``what``."""
    return await _poll(pilot.pause, condition, what, within)


async def until_published(
    condition: Callable[[], object], *buses: Publisher, what: str, within: float = WITHIN_S
) -> None:
    """Until ``condition()`` holds, checking it again after each event on ``buses``: no polling.

    For a condition that only an event can change (a status, a file an event follows).
    """
    changed = asyncio.Event()
    for bus in buses:
        bus.listen(lambda _event: changed.set(), name="test waiter")
    try:
        async with asyncio.timeout(within):
            while not condition():
                await changed.wait()
                changed.clear()
    except TimeoutError:
        raise _timed_out(what, within, None) from None
