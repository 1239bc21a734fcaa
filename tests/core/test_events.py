"""The event bus: publishing never waits, slow subscribers lag alone, batches arrive whole."""

from __future__ import annotations

import asyncio

from core.events import Event, EventBus, TextStreamed


def text(i: int) -> TextStreamed:
    return TextStreamed(run_id="r", agent_id="a", text=str(i))


async def test_a_slow_subscriber_does_not_stall_the_producer_or_other_subscribers() -> None:
    bus = EventBus()
    fast: list[Event] = []
    slow: list[Event] = []

    async def sluggish(event: Event) -> None:
        await asyncio.sleep(0.01)
        slow.append(event)

    bus.subscribe(fast.append, name="fast")
    bus.subscribe(sluggish, name="slow")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(200):
        bus.publish(text(i))
    assert loop.time() - started < 0.05, "publish never waits on a subscriber"
    await asyncio.sleep(0.05)
    assert len(fast) == 200 and len(slow) < 200
    await bus.close()
    assert [e.text for e in slow] == [str(i) for i in range(200)], "close delivers everything, in order"


async def test_batch_subscribers_get_everything_queued_at_once() -> None:
    bus = EventBus()
    batches: list[list[Event]] = []

    async def record(batch: list[Event]) -> None:
        batches.append(batch)

    bus.subscribe_batches(record, name="batches")
    for i in range(50):
        bus.publish(text(i))
    await bus.close()
    assert len(batches) == 1 and len(batches[0]) == 50


async def test_a_failing_subscriber_is_counted_not_fatal() -> None:
    bus = EventBus()

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    subscription = bus.subscribe(broken, name="broken")
    bus.publish(text(1))
    await bus.close()
    assert subscription.errors == 1
