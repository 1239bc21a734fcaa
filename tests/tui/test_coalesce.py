"""Many updates in, at most one flush per interval out, every dirty widget in the same batch."""

from __future__ import annotations

import time

from textual.app import App
from textual.widgets import Static

from tests.tui.waits import armed_throttles, settled
from tests.waits import until
from tui.coalesce import Coalescer, Throttle


class Recorder:
    def __init__(self, app: App[None], name: str, log: list[tuple[str, int]]) -> None:
        self.app, self.name, self.log = app, name, log

    def flush(self) -> None:
        self.log.append((self.name, self.app._batch_count))


async def test_a_throttle_runs_once_for_a_burst_and_keeps_its_interval() -> None:
    app: App[None] = App()
    calls: list[float] = []
    async with app.run_test() as pilot:
        throttle = Throttle(app, 0.1, lambda: calls.append(time.monotonic()))
        for _ in range(1000):
            throttle.poke()
        await until(pilot, lambda: calls, "the burst's call")
        await pilot.pause(0.15)  # an interval and more with no second call: this duration is the test
        assert len(calls) == 1
        throttle.poke()
        throttle.poke()
        await until(pilot, lambda: len(calls) >= 2, "the next burst's call")
        assert len(calls) == 2
        assert calls[1] - calls[0] >= 0.095


async def test_an_idle_throttle_does_nothing() -> None:
    app: App[None] = App()
    calls: list[int] = []
    async with app.run_test() as pilot:
        Throttle(app, 0.05, lambda: calls.append(1))
        await pilot.pause(0.2)  # four intervals in which nothing may happen: this duration is the test
        assert calls == []


async def test_dirty_widgets_flush_once_each_inside_one_batch_update() -> None:
    app: App[None] = App()
    log: list[tuple[str, int]] = []
    async with app.run_test() as pilot:
        coalescer = Coalescer(app, 0.05)
        a, b, c = (Recorder(app, name, log) for name in "abc")
        for _ in range(100):
            coalescer.mark(a)
            coalescer.mark(b)
        coalescer.mark(c)
        coalescer.discard(c)
        await until(pilot, lambda: coalescer.flushes, "the flush")
        assert log == [("a", 1), ("b", 1)]  # in marking order, with repaints held back
        assert coalescer.flushes == 1
        await pilot.pause(0.1)  # two intervals in which nothing may flush: this duration is the test
        assert coalescer.flushes == 1  # nothing dirty, nothing flushed


async def test_settled_waits_for_every_armed_throttle_even_inside_a_coalescer() -> None:
    """The tests' stillness check finds throttles by type wherever a widget keeps them."""

    class Pane(Static):
        def __init__(self) -> None:
            super().__init__()
            self.flushes = 0
            self.batches = Coalescer(self, 0.3)

        def flush(self) -> None:
            self.flushes += 1

    app: App[None] = App()
    async with app.run_test() as pilot:
        pane = Pane()
        await app.mount(pane)
        assert armed_throttles(app) == []
        pane.batches.mark(pane)
        assert armed_throttles(app) == [repr(pane)]
        await settled(pilot)
        assert pane.flushes == 1 and armed_throttles(app) == []
