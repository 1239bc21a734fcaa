"""The tests' wait helpers return what they waited for, and fail naming it instead of hanging."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from core.events import EventBus, TextStreamed
from tests.waits import eventually, until_published, wait_until


def test_wait_until_returns_the_conditions_value_once_it_holds() -> None:
    counter = itertools.count()
    assert wait_until(lambda: next(counter) >= 3 and "ready", "the third poll", poll=0.001) == "ready"


def test_wait_until_fails_naming_what_never_came_and_showing_the_detail() -> None:
    with pytest.raises(AssertionError, match=r"^timed out after 0.05 s waiting for the file\nlast screen$"):
        wait_until(lambda: False, "the file", 0.05, poll=0.01, detail=lambda: "last screen")


async def test_eventually_lets_the_loop_run_until_it_holds_and_fails_naming_it() -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, done.set)
    assert await eventually(done.is_set, "the timer")
    with pytest.raises(AssertionError, match="waiting for a thing that never comes"):
        await eventually(lambda: False, "a thing that never comes", 0.05)


async def test_until_published_checks_again_on_each_event_and_fails_naming_it() -> None:
    bus, seen = EventBus(), []
    bus.listen(seen.append)
    asyncio.get_running_loop().call_later(0.01, bus.publish, TextStreamed(run_id="r", agent_id="a", text="x"))
    await until_published(lambda: seen, bus, what="an event")
    with pytest.raises(AssertionError, match="waiting for a second event"):
        await until_published(lambda: len(seen) > 1, bus, what="a second event", within=0.05)
