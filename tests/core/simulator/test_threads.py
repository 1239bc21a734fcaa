"""Message threads on the simulator, on the wire: create, continue, expiry, the API's 400s and 404.

Sent with ``extra_body`` and the beta header so they run on every supported SDK (2.12 has no
``thread`` parameter); the SDK's own thread helpers are driven in ``test_thread_helpers.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic import AsyncAnthropic, BadRequestError, NotFoundError

from core.simulator import SimulatorSettings
from core.simulator.threads import THREADS_BETA
from tests.core.simulator.conftest import MODEL, WEB_SEARCH, StartSimulator, sdk

SYSTEM = "You are a careful research assistant."


class Clock:
    """A clock the test moves (the simulator's thread expiry reads it)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


async def send(
    client: AsyncAnthropic, messages: list[dict[str, Any]], thread: dict[str, Any] | None, **fields: Any
) -> Any:
    """One beta Messages request with ``thread`` (``fields`` may bring system, tools, stream...)."""
    extra: dict[str, Any] = {} if thread is None else {"thread": thread}
    stream = fields.pop("stream", False)
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 2048, "messages": messages, **fields}
    if stream:
        async with client.beta.messages.stream(**params, betas=[THREADS_BETA], extra_body=extra) as events:
            return await events.get_final_message()
    return await client.beta.messages.create(**params, betas=[THREADS_BETA], extra_body=extra)


def continue_from(message_id: str) -> dict[str, Any]:
    return {"type": "continue", "previous_message_id": message_id}


CREATE = {"type": "create"}


def error_code(error: Any) -> Any:
    return error.body["error"]["details"]["error_code"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(start_simulator: StartSimulator, clock: Clock) -> Any:
    sim = await start_simulator(
        SimulatorSettings(pause_turn_probability=0.0), clock=clock, record_bodies=True
    )
    async with sdk(sim) as client:
        client.sim = sim  # type: ignore[attr-defined]
        yield client


@pytest.mark.parametrize("stream", [False, True])
async def test_a_continue_sends_only_the_new_turn_and_is_billed_as_the_whole_conversation(
    client: Any, stream: bool
) -> None:
    first = [user("Research sodium-ion batteries for grid storage")]
    created = await send(client, first, CREATE, system=SYSTEM, tools=[WEB_SEARCH], stream=stream)
    follow_up = [user("Go deeper on their cost per kWh")]
    continued = await send(client, follow_up, continue_from(created.id), stream=stream)
    assert continued.id != created.id
    assert continued.stop_reason == "end_turn"

    sim = client.sim
    sent = sim.stats.bodies[-1]
    assert "system" not in sent and "tools" not in sent and len(sent["messages"]) == 1
    # The same conversation sent whole, without a thread, is billed the same input.
    whole = [*first, {"role": "assistant", "content": [b.to_dict() for b in created.content]}, *follow_up]
    unthreaded = await send(client, whole, None, system=SYSTEM, tools=[WEB_SEARCH])
    assert continued.usage.input_tokens == unthreaded.usage.input_tokens
    records = list(sim.stats.recent)[-3:]
    assert [r.thread for r in records] == ["create", "continue", None]
    # A continue belongs to its whole conversation in the log, as the same request sent whole does.
    assert records[1].conversation == records[0].conversation == records[2].conversation
    assert records[1].messages == records[2].messages == 3
    assert records[1].prompt_tokens == records[2].prompt_tokens > records[0].prompt_tokens
    assert records[1].bytes < records[2].bytes / 2
    assert records[1].validated_tokens < records[2].validated_tokens


async def test_each_response_continues_once_and_each_reply_can_be_continued(client: Any) -> None:
    created = await send(client, [user("Explain tidal power")], CREATE, system=SYSTEM)
    second = await send(client, [user("And its costs?")], continue_from(created.id))
    third = await send(client, [user("And its outlook?")], continue_from(second.id))
    assert third.stop_reason == "end_turn"
    with pytest.raises(BadRequestError) as again:
        await send(client, [user("And its risks?")], continue_from(second.id))
    assert again.value.status_code == 400
    assert error_code(again.value) == "thread_already_continued"
    assert "continued only once" in again.value.body["error"]["message"]


async def test_a_thread_expires_five_minutes_after_its_last_request(client: Any, clock: Clock) -> None:
    created = await send(client, [user("Explain tidal power")], CREATE, system=SYSTEM)
    clock.now += 299
    second = await send(client, [user("And its costs?")], continue_from(created.id))
    clock.now += 299  # the stored reply restarted the five minutes
    third = await send(client, [user("And its outlook?")], continue_from(second.id))
    clock.now += 301
    with pytest.raises(NotFoundError) as expired:
        await send(client, [user("And its risks?")], continue_from(third.id))
    assert expired.value.status_code == 404
    assert expired.value.body["error"]["type"] == "not_found_error"
    assert error_code(expired.value) == "thread_not_found"
    with pytest.raises(NotFoundError):
        await send(client, [user("Hello")], continue_from("msg_01unknown"))


async def test_a_paused_turn_resumes_from_an_empty_continue(client: Any) -> None:
    paused = await send(
        client, [user("Research heat pumps [sim:pause_turn]")], CREATE, system=SYSTEM, tools=[WEB_SEARCH]
    )
    assert paused.stop_reason == "pause_turn"
    resumed = await send(client, [], continue_from(paused.id))
    assert resumed.stop_reason == "end_turn"
    # The thread holds the paused turn and its resumption as one assistant message.
    after = await send(client, [user("Now summarise")], continue_from(resumed.id))
    assert after.stop_reason == "end_turn"


async def test_a_reply_whose_stream_broke_is_not_held(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SimulatorSettings(pause_turn_probability=0.0))
    async with sdk(sim) as client:
        created = await send(client, [user("Explain tidal power")], CREATE)
        with pytest.raises(Exception):  # noqa: B017 - the SDK's error for a cut stream varies by version
            await send(
                client, [user("Costs? [sim:fault=disconnect]")], continue_from(created.id), stream=True
            )
        retried = await send(client, [user("Costs?")], continue_from(created.id))
        assert retried.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("thread", "fields", "message"),
    [
        ({"type": "fork"}, {}, "thread: Input tag 'fork' found using 'type' does not match"),
        ("create", {}, "thread: Input should be a valid dictionary"),
        ({"type": "continue"}, {}, "thread.continue.previous_message_id: Field required"),
        (
            {"type": "continue", "previous_message_id": 7},
            {},
            "previous_message_id: Input should be a valid string",
        ),
        ({"type": "create", "ttl": "1h"}, {}, "thread.create.ttl: Extra inputs are not permitted"),
        (None, {"system": SYSTEM}, "system: Extra inputs are not permitted on a `thread` continue"),
        (None, {"tools": [WEB_SEARCH]}, "tools: Extra inputs are not permitted on a `thread` continue"),
    ],
)
async def test_malformed_thread_fields_get_the_api_400(
    client: Any, thread: Any, fields: dict[str, Any], message: str
) -> None:
    created = await send(client, [user("Explain tidal power")], CREATE, system=SYSTEM)
    with pytest.raises(BadRequestError) as refused:
        await send(client, [user("More")], thread or continue_from(created.id), **fields)
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert message in refused.value.body["error"]["message"]
    # A refused continue leaves the response free to be continued.
    assert (await send(client, [user("More")], continue_from(created.id))).stop_reason == "end_turn"


async def test_the_model_of_a_thread_stays(client: Any) -> None:
    created = await send(client, [user("Explain tidal power")], CREATE)
    with pytest.raises(BadRequestError) as refused:
        await client.beta.messages.create(
            model="claude-haiku-4-5",
            max_tokens=512,
            messages=[user("More")],
            betas=[THREADS_BETA],
            extra_body={"thread": continue_from(created.id)},
        )
    assert error_code(refused.value) == "thread_fingerprint_mismatch"
    assert "`model`" in refused.value.body["error"]["message"]


async def test_without_the_beta_header_thread_is_an_unknown_field(client: Any) -> None:
    with pytest.raises(BadRequestError) as refused:
        await client.messages.create(
            model=MODEL, max_tokens=256, messages=[user("Hi")], extra_body={"thread": CREATE}
        )
    assert refused.value.body["error"]["message"] == "thread: Extra inputs are not permitted"
    with pytest.raises(BadRequestError) as unknown:
        await client.beta.messages.create(
            model=MODEL,
            max_tokens=256,
            messages=[user("Hi")],
            betas=[THREADS_BETA],
            extra_body={"threads": 1},
        )
    assert unknown.value.body["error"]["message"] == "threads: Extra inputs are not permitted"


async def test_time_to_first_byte_grows_with_the_tokens_a_request_carries(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator(
        SimulatorSettings(pause_turn_probability=0.0, validation_ms_per_1k_tokens=2.0)
    )
    async with sdk(sim) as client:
        history = [user("Explain tidal power " + "in depth " * 3000)]
        created = await send(client, history, CREATE)
        await send(client, [user("More")], continue_from(created.id))
        whole = [
            *history,
            {"role": "assistant", "content": [b.to_dict() for b in created.content]},
            user("More"),
        ]
        await send(client, whole, None)
    create, follow_up, unthreaded = list(sim.stats.recent)[-3:]
    assert unthreaded.first_byte_s > create.first_byte_s > 10 * follow_up.first_byte_s
    assert unthreaded.first_byte_s == pytest.approx(unthreaded.validated_tokens / 1000 * 0.002)
