"""The official Python SDK's ``client.messages.batches`` calls against the simulator, end to end."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from anthropic import AsyncAnthropic, BadRequestError, NotFoundError
from anthropic.types.messages import (
    MessageBatchCanceledResult,
    MessageBatchErroredResult,
    MessageBatchExpiredResult,
    MessageBatchSucceededResult,
)

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.batches.conftest import QUICK, ended, entry, held, results
from tests.core.simulator.conftest import StartSimulator, sdk
from tests.core.simulator.test_threads import Clock
from tests.waits import eventually


async def test_create_answers_an_in_progress_batch_that_then_ends_with_its_results(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    created = await quick.messages.batches.create(requests=[entry("a"), entry("b", "Research tidal power")])

    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 2 and created.request_counts.succeeded == 0
    assert created.results_url is None and created.ended_at is None and created.archived_at is None
    assert created.expires_at - created.created_at == timedelta(hours=24)

    batch = await ended(quick_sim, quick, created.id)

    assert batch.processing_status == "ended" and batch.request_counts.succeeded == 2
    assert batch.request_counts.processing == 0
    assert batch.ended_at is not None and batch.ended_at >= batch.created_at
    assert batch.results_url == f"{quick_sim.base_url}/v1/messages/batches/{created.id}/results"
    by_id = await results(quick, created.id)
    assert sorted(by_id) == ["a", "b"]
    for line in by_id.values():
        assert isinstance(line.result, MessageBatchSucceededResult)
        message = line.result.message
        assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
        assert message.usage.server_tool_use is not None
        assert message.usage.server_tool_use.web_search_requests >= 1
        assert any(getattr(b, "citations", None) for b in message.content), "cited text, as the API gives"


async def test_results_hold_every_result_type(start_simulator: StartSimulator) -> None:
    """Succeeded, errored (invalid params, found asynchronously) and expired (past ``expires_at``)."""
    sim = await start_simulator(
        SimulatorSettings(pause_turn_probability=0.0, batch_processing_s=2.0, batch_expiry_s=1.0)
    )
    requests = [entry(f"ok-{i}") for i in range(3)] + [
        {
            "custom_id": "no-max-tokens",
            "params": {k: v for k, v in entry("x")["params"].items() if k != "max_tokens"},
        },
        entry("unknown-model", model="claude-imaginary-9"),
        entry("streamed", stream=True),
    ]
    async with sdk(sim) as client:
        created = await client.messages.batches.create(requests=requests)
        batch = await ended(sim, client, created.id)
        by_id = await results(client, created.id)

    counts = batch.request_counts
    assert counts.processing == 0 and counts.canceled == 0
    assert counts.succeeded + counts.errored + counts.expired == len(requests)
    assert (counts.expired, counts.succeeded + counts.errored) == (3, 3), counts  # due after 1 s of 2
    assert batch.ended_at is not None and batch.ended_at >= batch.expires_at - timedelta(milliseconds=50)
    kinds = {line.result.type for line in by_id.values()}
    assert kinds >= {"expired"} and kinds <= {"succeeded", "errored", "expired"}
    expired = [i for i, line in by_id.items() if isinstance(line.result, MessageBatchExpiredResult)]
    assert len(expired) == counts.expired
    errors = {
        i: line.result.error.error
        for i, line in by_id.items()
        if isinstance(line.result, MessageBatchErroredResult)
    }
    expected = {
        "no-max-tokens": ("invalid_request_error", "max_tokens: Field required"),
        "unknown-model": ("not_found_error", "model: claude-imaginary-9"),
        "streamed": ("invalid_request_error", "stream"),
    }
    for custom_id, error in errors.items():
        kind, fragment = expected[custom_id]
        assert error.type == kind and fragment in error.message
    for custom_id in expected:  # an invalid request is never a success, whether it ran or expired
        assert by_id[custom_id].result.type in ("errored", "expired")


async def test_invalid_params_are_errored_results_not_a_400_of_the_batch(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    created = await quick.messages.batches.create(
        requests=[entry("good"), entry("bad", messages=[]), entry("huge", max_tokens=10**9)]
    )
    batch = await ended(quick_sim, quick, created.id)
    by_id = await results(quick, created.id)

    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 2)
    assert by_id["good"].result.type == "succeeded"
    bad, huge = by_id["bad"].result, by_id["huge"].result
    assert isinstance(bad, MessageBatchErroredResult) and isinstance(huge, MessageBatchErroredResult)
    assert bad.error.type == "error" and bad.error.error.type == "invalid_request_error"
    assert "at least one message" in bad.error.error.message
    assert "maximum allowed number of output tokens" in huge.error.error.message


async def test_cancel_moves_to_canceling_then_ends_with_the_rest_canceled(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator(SimulatorSettings(pause_turn_probability=0.0, batch_processing_s=6.0))
    async with sdk(sim) as client:
        created = await client.messages.batches.create(requests=[entry(f"r{i}") for i in range(3)])
        await eventually(lambda: len(held(sim, created.id).results) >= 1, "a first request to finish")
        canceling = await client.messages.batches.cancel(created.id)
        batch = await ended(sim, client, created.id)
        by_id = await results(client, created.id)

    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.results_url is None
    assert batch.processing_status == "ended" and batch.cancel_initiated_at == canceling.cancel_initiated_at
    counts = batch.request_counts
    assert counts.succeeded >= 1 and counts.canceled >= 1 and counts.succeeded + counts.canceled == 3
    canceled = [i for i, line in by_id.items() if isinstance(line.result, MessageBatchCanceledResult)]
    assert len(canceled) == counts.canceled


async def test_a_batch_keeps_progressing_while_nobody_polls(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SimulatorSettings(pause_turn_probability=0.0, batch_processing_s=5.0))
    async with sdk(sim) as client:
        created = await client.messages.batches.create(requests=[entry(f"r{i}") for i in range(5)])
        calls = sim.stats.requests
        await eventually(lambda: len(held(sim, created.id).results) >= 1, "a first request to finish")
        assert sim.stats.requests == calls, "nobody called the API meanwhile"
        midway = await client.messages.batches.retrieve(created.id)
        assert midway.processing_status == "in_progress"
        assert midway.request_counts.succeeded >= 1 and midway.request_counts.processing >= 1
        assert midway.request_counts.succeeded + midway.request_counts.processing == 5
        await eventually(lambda: held(sim, created.id).ended, "the batch to end", within=30)
        assert sim.stats.requests == calls + 1
        batch = await client.messages.batches.retrieve(created.id)
    assert batch.request_counts.succeeded == 5


async def test_results_arrive_in_no_particular_order(quick_sim: Simulator, quick: AsyncAnthropic) -> None:
    ids = [f"r{i:02d}" for i in range(12)]
    created = await quick.messages.batches.create(requests=[entry(i, f"Research topic {i}") for i in ids])
    await ended(quick_sim, quick, created.id)
    order = [line.custom_id async for line in await quick.messages.batches.results(created.id)]

    assert sorted(order) == ids and order != ids


async def test_list_pages_most_recent_first_with_after_and_before_cursors(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    created = [(await quick.messages.batches.create(requests=[entry(f"b{i}")])).id for i in range(5)]
    newest_first = created[::-1]

    first = await quick.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2]
    assert first.has_more is True and (first.first_id, first.last_id) == tuple(newest_first[:2])
    assert [b.id async for b in await quick.messages.batches.list(limit=2)] == newest_first  # auto-paging
    second = await first.get_next_page()
    assert [b.id for b in second.data] == newest_first[2:4]
    last = await quick.messages.batches.list(limit=2, after_id=newest_first[3])
    assert [b.id for b in last.data] == newest_first[4:] and last.has_more is False
    before = await quick.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in before.data] == newest_first[2:4] and before.has_more is True
    assert [b.id async for b in before] == newest_first[2:4] + newest_first[:2]  # auto-paging backwards
    everything = await quick.messages.batches.list()
    assert [b.id for b in everything.data] == newest_first and everything.has_more is False
    empty = await quick.messages.batches.list(after_id=newest_first[-1])
    assert empty.data == [] and empty.first_id is None and empty.last_id is None


async def test_delete_forgets_an_ended_batch_and_refuses_one_in_progress(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator(SimulatorSettings(pause_turn_probability=0.0, batch_processing_s=30.0))
    async with sdk(sim) as client:
        created = await client.messages.batches.create(requests=[entry("a"), entry("b")])
        with pytest.raises(BadRequestError) as refused:
            await client.messages.batches.delete(created.id)
        assert "cancel it first" in refused.value.message
        await client.messages.batches.cancel(created.id)
        await ended(sim, client, created.id)

        deleted = await client.messages.batches.delete(created.id)

        assert deleted.id == created.id and deleted.type == "message_batch_deleted"
        with pytest.raises(NotFoundError):
            await client.messages.batches.retrieve(created.id)
        assert [b.id async for b in client.messages.batches.list()] == []


async def test_the_simulator_counts_every_custom_id_submitted(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    """What a crash-and-resume test needs: each custom_id the simulator accepted, and how often."""
    await quick.messages.batches.create(requests=[entry("agent-1-turn-1"), entry("agent-2-turn-1")])
    await quick.messages.batches.create(requests=[entry("agent-1-turn-1"), entry("agent-1-turn-2")])
    with pytest.raises(BadRequestError):  # a refused batch submits nothing
        await quick.messages.batches.create(requests=[entry("agent-3-turn-1"), entry("bad id")])

    expected = {"agent-1-turn-1": 2, "agent-2-turn-1": 1, "agent-1-turn-2": 1}
    assert dict(quick_sim.state.batches.submitted) == expected
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{quick_sim.base_url}/_simulator/batches") as response,
    ):
        assert (await response.json())["submitted"] == expected


async def test_batches_last_as_long_as_the_simulator(start_simulator: StartSimulator) -> None:
    """Another client of the same simulator (a resumed run) finds the batch and its results."""
    sim = await start_simulator(QUICK)
    async with sdk(sim) as first:
        created = await first.messages.batches.create(requests=[entry("a")])
    async with sdk(sim) as second:
        batch = await ended(sim, second, created.id)
        assert batch.request_counts.succeeded == 1
        assert list(await results(second, created.id)) == ["a"]


async def test_a_batch_is_archived_29_days_after_creation_and_its_results_go(
    start_simulator: StartSimulator,
) -> None:
    clock = Clock()
    sim = await start_simulator(QUICK, clock=clock)
    async with sdk(sim) as client:
        created = await client.messages.batches.create(requests=[entry("a")])
        batch = await ended(sim, client, created.id)
        assert batch.archived_at is None and list(await results(client, created.id)) == ["a"]

        clock.now += 29 * 86_400
        archived = await client.messages.batches.retrieve(created.id)

        assert archived.archived_at == created.created_at + timedelta(days=29)
        with pytest.raises(NotFoundError):
            await client.messages.batches.results(created.id)
