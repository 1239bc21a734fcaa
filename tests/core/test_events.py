"""The event bus: publishing never waits, slow subscribers lag alone, batches arrive whole."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging

import pytest

from core import events as events_module
from core.events import (
    EVENT_TYPES,
    AgentFinished,
    AgentSeed,
    AttemptCharged,
    Event,
    EventBase,
    EventBus,
    IncidentsRecalled,
    LayerFinished,
    RetryScheduled,
    RunFinished,
    RunStarted,
    SubscriberFailed,
    TextStreamed,
    from_json,
)
from core.status import AgentStatus, RunStatus
from core.usage import TokenUsage
from tests.waits import eventually


def text(i: int) -> TextStreamed:
    return TextStreamed(run_id="r", agent_id="a", text=str(i))


async def test_a_slow_subscriber_does_not_stall_the_producer_or_other_subscribers() -> None:
    bus = EventBus()
    fast: list[Event] = []
    slow: list[Event] = []

    async def sluggish(event: Event) -> None:
        await asyncio.sleep(0.01)  # a slow subscriber: the duration is the behaviour
        slow.append(event)

    bus.subscribe(fast.append, name="fast")
    bus.subscribe(sluggish, name="slow")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(200):
        bus.publish(text(i))
    # waiting on the slow one would take 200 x 10 ms; a loaded machine may stall us for a fraction of that
    assert loop.time() - started < 1.0, "publish never waits on a subscriber"
    await eventually(lambda: len(fast) == 200, "the fast subscriber to get everything")
    assert len(slow) < 200
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


# --- failures are never silent --------------------------------------------------------------------


async def test_a_raising_listener_is_logged_and_published_and_the_others_still_receive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    received: list[Event] = []

    def broken(event: Event) -> None:
        if isinstance(event, TextStreamed):
            raise RuntimeError("widget exploded")

    bus.listen(broken, name="broken widget")
    bus.listen(received.append)
    with caplog.at_level(logging.ERROR, logger="core.events"):
        bus.publish(text(1))
    failures = [e for e in received if isinstance(e, SubscriberFailed)]
    assert [e.subscriber for e in failures] == ["broken widget"]
    assert "widget exploded" in failures[0].message
    assert any(isinstance(e, TextStreamed) for e in received), "the other listener still got the event"
    assert "broken widget" in caplog.text and "RuntimeError" in caplog.text
    await bus.close()


async def test_a_subscriber_failing_on_every_event_does_not_loop() -> None:
    bus = EventBus()
    seen: list[Event] = []

    def always(event: Event) -> None:
        raise ValueError("always")

    bus.listen(always)
    bus.listen(seen.append)
    bus.publish(text(1))
    assert [type(e) for e in seen] == [SubscriberFailed, TextStreamed]
    assert bus.failures == 2  # the event, then the failure report (which is not reported again)


async def test_a_queued_subscriber_failure_is_published_too() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.listen(seen.append)

    async def failing(event: Event) -> None:
        raise OSError("disk gone")

    bus.subscribe(failing, name="journal")
    bus.publish(text(1))
    await bus.close()
    assert any(isinstance(e, SubscriberFailed) and e.subscriber == "journal" for e in seen)


# --- events round-trip through the journal -------------------------------------------------------


def sample(cls: type[Event]) -> Event:
    """An instance of ``cls`` with a value of the right shape in every field."""
    values: dict[str, object] = {"run_id": "r", "agent_id": "a", "layer": 1, "turn": 2, "at": 5.0}
    for f in dataclasses.fields(cls):
        if (
            f.name in values
            or f.default is not dataclasses.MISSING
            or f.default_factory is not dataclasses.MISSING
        ):  # type: ignore[misc]
            continue
        values[f.name] = {"usage": TokenUsage(input_tokens=3, web_search_requests=1)}.get(
            f.name, _by_type(str(f.type))
        )
    return cls(**values)


def _by_type(annotation: str) -> object:
    if annotation in ("AgentStatus", "RunStatus"):
        return {"AgentStatus": AgentStatus.REFUSED, "RunStatus": RunStatus.KILLED}[annotation]
    if "TokenUsage" in annotation:
        return TokenUsage(output_tokens=7)
    if annotation.startswith("int"):
        return 4
    if annotation.startswith("float"):
        return 0.25
    return "x"


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_every_event_kind_survives_a_trip_through_json(kind: str) -> None:
    event = sample(EVENT_TYPES[kind])
    assert from_json(json.loads(json.dumps(event.to_json()))) == event


def test_a_resumed_run_start_round_trips_with_its_seeds() -> None:
    event = RunStarted(
        run_id="r",
        program="p",
        run_dir="d",
        agents=(("a", 1, "A"), ("b", 2, "B")),
        seeds={"a": AgentSeed(status="completed", turns=3, searches=4, cost_usd=0.5, report_path="x.md")},
        parent={"run_id": "q", "checkpoint_id": "000003-a-t003"},
        started_at=12.0,
    )
    assert from_json(json.loads(json.dumps(event.to_json()))) == event


def test_recalled_incidents_round_trip_as_the_events_they_are() -> None:
    retry = sample(RetryScheduled)
    charged = sample(AttemptCharged)
    event = IncidentsRecalled(run_id="r", incidents=(retry, charged))
    assert from_json(json.loads(json.dumps(event.to_json()))) == event


def test_statuses_are_enums_whether_given_or_read_as_strings() -> None:
    finished = from_json({"kind": "run_finished", "run_id": "r", "status": "killed", "cost_usd": 1.0})
    assert isinstance(finished, RunFinished) and finished.status is RunStatus.KILLED
    assert AgentSeed(status="paused").status is AgentStatus.PAUSED  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="malformed agent_finished"):
        from_json({"kind": "agent_finished", "run_id": "r", "status": "done"})


def test_the_union_is_closed_every_event_class_is_in_it() -> None:
    classes = {
        value
        for value in vars(events_module).values()
        if isinstance(value, type) and issubclass(value, EventBase) and value is not EventBase
    }
    assert classes == set(EVENT_TYPES.values())
    assert all(cls.__dataclass_fields__["kind"].default == kind for kind, cls in EVENT_TYPES.items())


def test_a_journal_line_written_before_kinds_were_typed_still_loads() -> None:
    """Lines as earlier versions wrote them (statuses as strings, fields since added absent)."""
    lines = [
        '{"kind": "agent_finished", "run_id": "r", "agent_id": "a", "layer": 1, "turn": 3, "at": 1.0, '
        '"status": "budget_exhausted", "report_path": "reports/a.md", "turns": 3, "searches": 2, '
        '"cost_usd": 0.5}',
        '{"kind": "layer_finished", "run_id": "r", "layer": 1, "at": 2.0, "statuses": {"a": "completed"}}',
        '{"kind": "run_started", "run_id": "r", "at": 0.5, "program": "p", "run_dir": "d", '
        '"agents": [["a", 1, "A"]], "seeds": {"a": {"status": "killed", "turns": 1}}}',
    ]
    finished, layer, started = (from_json(json.loads(line)) for line in lines)
    assert isinstance(finished, AgentFinished) and finished.status is AgentStatus.BUDGET_EXHAUSTED
    assert isinstance(layer, LayerFinished) and layer.statuses == {"a": AgentStatus.COMPLETED}
    assert isinstance(started, RunStarted) and started.seeds["a"].status is AgentStatus.KILLED


def test_an_unknown_or_malformed_line_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        from_json({"kind": "no_such_event", "run_id": "r"})
    with pytest.raises(ValueError):
        from_json({"kind": "turn_completed", "run_id": "r"})
