"""Prompt caching accounting through the SDK: writes, reads, TTLs, minimum length, breakpoints."""

from __future__ import annotations

from typing import Any

from anthropic import AsyncAnthropic

from core.simulator import SimulatorSettings
from tests.core.simulator.conftest import StartSimulator, request, sdk

LONG_SYSTEM = "You are a careful research analyst who cites every claim. " * 200  # about 3,000 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def cached_request(ttl: str = "5m", **overrides: Any) -> dict[str, Any]:
    """A request whose long system prompt (distinct per TTL) carries a cache breakpoint."""
    text = LONG_SYSTEM + ttl
    system = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}]
    return request(system=system, tools=[], **overrides)


async def test_a_second_identical_prefix_reads_what_the_first_wrote(client: AsyncAnthropic) -> None:
    first = await client.messages.create(**cached_request())
    second = await client.messages.create(**cached_request(messages=[{"role": "user", "content": "Other"}]))

    assert first.usage.cache_creation_input_tokens and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0


async def test_uncached_cached_and_written_tokens_add_up_to_the_prompt(client: AsyncAnthropic) -> None:
    params = cached_request()
    counted = await client.messages.count_tokens(
        model=params["model"], system=params["system"], messages=params["messages"]
    )
    for _ in range(2):
        usage = (await client.messages.create(**params)).usage
        total = (
            usage.input_tokens
            + (usage.cache_read_input_tokens or 0)
            + (usage.cache_creation_input_tokens or 0)
        )
        assert total == counted.input_tokens


async def test_a_streamed_call_reports_the_cache_read_in_both_events(client: AsyncAnthropic) -> None:
    await client.messages.create(**cached_request())
    async with client.messages.stream(**cached_request()) as stream:
        events = [event async for event in stream]
        message = await stream.get_final_message()

    start = next(e for e in events if e.type == "message_start").message.usage
    assert start.cache_read_input_tokens == message.usage.cache_read_input_tokens
    assert message.usage.cache_read_input_tokens


async def test_a_prefix_below_the_model_minimum_is_not_cached(client: AsyncAnthropic) -> None:
    system = [{"type": "text", "text": "Short system prompt.", "cache_control": {"type": "ephemeral"}}]
    for _ in range(2):
        usage = (await client.messages.create(**request(system=system, tools=[]))).usage
        assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0


async def test_five_minute_entries_expire_and_one_hour_entries_survive(
    start_simulator: StartSimulator,
) -> None:
    clock = Clock()
    client = sdk(await start_simulator(SimulatorSettings(pause_turn_probability=0), clock=clock))
    await client.messages.create(**cached_request("5m"))
    one_hour = await client.messages.create(**cached_request("1h", max_tokens=100))
    assert one_hour.usage.cache_creation is not None
    assert one_hour.usage.cache_creation.ephemeral_1h_input_tokens > 0

    clock.now += 301
    expired = await client.messages.create(**cached_request("5m", max_tokens=200))
    surviving = await client.messages.create(**cached_request("1h", max_tokens=300))

    assert expired.usage.cache_read_input_tokens == 0 and expired.usage.cache_creation_input_tokens
    assert surviving.usage.cache_read_input_tokens


async def test_a_read_refreshes_the_ttl(start_simulator: StartSimulator) -> None:
    clock = Clock()
    client = sdk(await start_simulator(SimulatorSettings(pause_turn_probability=0), clock=clock))
    await client.messages.create(**cached_request())
    clock.now += 200
    await client.messages.create(**cached_request(max_tokens=100))
    clock.now += 200  # 400 s after the write, 200 s after the read

    usage = (await client.messages.create(**cached_request(max_tokens=200))).usage
    assert usage.cache_read_input_tokens


async def test_request_level_cache_control_follows_a_growing_conversation(client: AsyncAnthropic) -> None:
    turn_one = [{"role": "user", "content": LONG_SYSTEM}]
    first = await client.messages.create(
        **request(messages=turn_one, tools=[], cache_control={"type": "ephemeral"})
    )
    turn_two = [
        *turn_one,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "Go deeper on costs."},
    ]
    second = await client.messages.create(
        **request(messages=turn_two, tools=[], cache_control={"type": "ephemeral"})
    )

    assert first.usage.cache_creation_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens  # the new turn is written for the next call


async def test_the_minimum_is_configurable(start_simulator: StartSimulator) -> None:
    client = sdk(await start_simulator(SimulatorSettings(cache_min_tokens=0)))
    system = [{"type": "text", "text": "Short system prompt.", "cache_control": {"type": "ephemeral"}}]
    usage = (await client.messages.create(**request(system=system, tools=[]))).usage
    assert usage.cache_creation_input_tokens


async def test_a_request_without_breakpoints_neither_reads_nor_writes_the_cache(
    client: AsyncAnthropic,
) -> None:
    first = await client.messages.create(**cached_request())
    assert first.usage.cache_creation_input_tokens
    plain = request(system=[{"type": "text", "text": LONG_SYSTEM + "5m"}], tools=[])  # the same prefix
    for _ in range(2):
        usage = (await client.messages.create(**plain)).usage
        assert usage.cache_read_input_tokens == 0 and usage.cache_creation_input_tokens == 0
        prompt = first.usage.input_tokens + first.usage.cache_creation_input_tokens
        assert usage.input_tokens == prompt  # every prompt token billed as plain input
