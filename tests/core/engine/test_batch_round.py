"""A batch layer's rounds against a small fake Batches API: what goes into a batch, when, and what
each kind of result does to the agent waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from core.api.attempt import AttemptProgress, Outcome
from core.api.batches import BatchResult
from core.api.failure import outcome_of
from core.api.retry import classify
from core.api.transport import BatchHold, TransportError
from core.engine.batch_round import EXPIRED_MESSAGE, BatchRound, PollSchedule, WaitEnded, custom_id_of
from core.events import Event
from core.persistence.batchlog import BatchLog, BatchRecords, BatchRequestRecord
from tests.core.engine.batch_fakes import FakeBatches

FAST = PollSchedule(first_s=0.001, factor=1.0, max_s=0.001, gather_s=0.05)


def message(text: str = "found it") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 100, "output_tokens": 20},
    }


def answering(*outcomes: str) -> FakeBatches:
    """A fake whose n-th answer to a request (by agent) is ``outcomes[n]`` (the last repeats)."""
    seen: dict[str, int] = {}

    async def answer(custom_id: str, params: Mapping[str, Any]) -> BatchResult:
        agent = str(params["agent"])
        n = seen.get(agent, 0)
        seen[agent] = n + 1
        kind = outcomes[min(n, len(outcomes) - 1)]
        if kind == "succeeded":
            return BatchResult(custom_id, "succeeded", message=message(agent))
        if kind in ("overloaded_error", "invalid_request_error"):
            body = {"type": "error", "error": {"type": kind, "message": f"{kind} here"}}
            return BatchResult(custom_id, "errored", error=body)
        return BatchResult(custom_id, kind)  # type: ignore[arg-type]

    return FakeBatches(answer)


def round_of(fake: FakeBatches, agents: list[str], **kw: Any) -> tuple[BatchRound, list[Event]]:
    events: list[Event] = []
    batch = BatchRound(
        client=fake, layer=1, run_id="run", publish=events.append, schedule=FAST, agents=agents, **kw
    )
    return batch, events


async def ask(batch: BatchRound, agent: str, turn: int = 1) -> Mapping[str, Any]:
    return await batch.answer(agent, turn, {"agent": agent}, BatchHold(), lambda: "stop", lambda hold: None)


async def test_every_ready_agent_goes_into_one_batch_named_by_agent_and_turn() -> None:
    fake = answering("succeeded")
    batch, events = round_of(fake, ["a", "b", "c"])
    answers = await asyncio.gather(*(ask(batch, agent, turn=3) for agent in ("a", "b", "c")))
    await batch.close()
    assert [m["content"][0]["text"] for m in answers] == ["a", "b", "c"]
    assert len(fake.batches) == 1
    assert sorted(fake.created) == ["a-t3", "b-t3", "c-t3"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "batch_submitted" and kinds[-1] == "batch_ended"


async def test_a_round_waits_for_the_agents_at_work_and_no_longer_once_one_has_left() -> None:
    fake = answering("succeeded")
    batch, _ = round_of(fake, ["a", "b"])
    first = asyncio.ensure_future(ask(batch, "a"))
    await asyncio.sleep(0)
    batch.leave("b")  # b ended before asking: a's round goes without it
    await first
    await batch.close()
    assert fake.created == ["a-t1"]


async def test_an_expired_request_is_sent_once_more_then_fails_its_agent_clearly() -> None:
    fake = answering("expired", "succeeded")
    batch, _ = round_of(fake, ["a"])
    assert (await ask(batch, "a"))["content"][0]["text"] == "a"
    assert fake.created == ["a-t1", "a-t1-a1"]

    fake = answering("expired")
    batch, _ = round_of(fake, ["a"])
    with pytest.raises(TransportError) as raised:
        await ask(batch, "a")
    await batch.close()
    assert fake.created == ["a-t1", "a-t1-a1"]
    info = classify(raised.value)
    assert info is not None and not info.retryable and info.message == EXPIRED_MESSAGE


@pytest.mark.parametrize(
    ("error", "retryable", "status"), [("overloaded_error", True, 529), ("invalid_request_error", False, 400)]
)
async def test_an_errored_result_is_raised_as_its_status_would_be(
    error: str, retryable: bool, status: int
) -> None:
    batch, _ = round_of(answering(error), ["a"])
    progress = AttemptProgress(sent=True)
    with pytest.raises(TransportError) as raised:
        await ask(batch, "a")
    await batch.close()
    info = classify(raised.value)
    assert info is not None and info.retryable is retryable and info.status_code == status
    assert outcome_of(raised.value, progress) is Outcome.NOT_RUN  # an errored request is not billed


async def test_a_request_a_previous_process_submitted_is_collected_from_its_batch_not_sent_again() -> None:
    fake = answering("succeeded")
    earlier = await fake.create_batch([("a-t2", {"agent": "a"})])
    records = BatchRecords(batch_of={"a-t2": earlier.id})
    batch, _ = round_of(fake, ["a"], records=records)
    assert (await ask(batch, "a", turn=2))["content"][0]["text"] == "a"
    await batch.close()
    assert fake.created == ["a-t2"] and len(fake.batches) == 1


@pytest.mark.parametrize("how", ["kill", "now", "stop"])
async def test_a_kill_or_a_stop_now_cancels_the_batch_a_stop_leaves_it_running(how: WaitEnded) -> None:
    """A stop, clean or now, defers the attempt's charge to the resume (which collects its result);
    a kill is charged its worst case, as a stream's kill is."""
    fake = answering("succeeded")
    fake.polls_to_end = 10**9  # never ends by itself
    batch, _ = round_of(fake, ["a"])
    hold, submitted = BatchHold(), asyncio.Event()
    waiting = asyncio.ensure_future(
        batch.answer("a", 1, {"agent": "a"}, hold, lambda: how, lambda h: submitted.set())
    )
    await submitted.wait()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await batch.close()
    assert fake.cancelled == ([] if how == "stop" else [hold.batch_id])
    assert hold.deferred is (how != "kill")
    progress = AttemptProgress(sent=True, batch=hold)
    expected = Outcome.UNKNOWN if how == "kill" else Outcome.NOT_RUN
    assert outcome_of(asyncio.CancelledError(), progress) is expected


def test_custom_ids_fit_the_api_pattern_and_stay_unique_for_long_agent_ids() -> None:
    long_a, long_b = "a" * 64, "a" * 63 + "b"
    ids = {custom_id_of(agent, 12345, attempt) for agent in (long_a, long_b) for attempt in (0, 1)}
    assert len(ids) == 4 and all(len(i) <= 64 for i in ids)
    assert custom_id_of("market", 3, 0) == "market-t3"


async def test_the_log_holds_custom_ids_before_the_batch_id_and_skips_a_torn_line(tmp_path: Path) -> None:
    log = BatchLog(tmp_path)
    await log.submitting("t1", 1, [BatchRequestRecord("a-t1", "a", 1)], 0.0)
    assert log.read().unconfirmed == {"a-t1"}  # a crash here: written ahead, no id yet
    await log.submitted("t1", "msgbatch_1")
    await log.submitting("t2", 1, [BatchRequestRecord("a-t2", "a", 2)], 1.0)
    with log.path.open("ab") as torn:
        torn.write(b'{"op":"submitted","tok')
    records = log.read()
    assert records.batch_of == {"a-t1": "msgbatch_1"} and records.unconfirmed == {"a-t2"}
    assert records.in_batch("a", 1) and not records.in_batch("a", 2)
