"""Injected faults, as the SDK sees them, and their determinism."""

from __future__ import annotations

import time

import httpx2
import pytest
from anthropic import (
    APIConnectionError,
    APIStatusError,
    AsyncAnthropic,
    InternalServerError,
    OverloadedError,
    RateLimitError,
)

from core.api.failure import Ending, causes, failure_of
from core.simulator import SimulatorSettings
from tests.core.simulator.conftest import StartSimulator, request, sdk


async def test_rate_limit_fault_is_a_rate_limit_error_with_retry_after(client: AsyncAnthropic) -> None:
    with pytest.raises(RateLimitError) as caught:
        await client.messages.create(**request("Research tea [sim:fault=rate_limit]"))

    headers = caught.value.response.headers
    assert caught.value.status_code == 429 and 0 < float(headers["retry-after"]) <= 60
    assert headers["x-should-retry"] == "true" and caught.value.type == "rate_limit_error"


async def test_overloaded_fault_is_a_529_overloaded_error(client: AsyncAnthropic) -> None:
    with pytest.raises(OverloadedError) as caught:
        async with client.messages.stream(**request("Research tea [sim:fault=overloaded]")) as stream:
            await stream.get_final_message()

    # In SDK 2.x OverloadedError is an InternalServerError.
    assert caught.value.status_code == 529 and isinstance(caught.value, InternalServerError)
    assert caught.value.type == "overloaded_error"


async def test_server_error_fault_is_a_500(client: AsyncAnthropic) -> None:
    with pytest.raises(InternalServerError) as caught:
        await client.messages.create(**request("Research tea [sim:fault=server_error]"))
    assert caught.value.status_code == 500 and caught.value.type == "api_error"


async def test_stream_error_comes_after_content_as_status_200(client: AsyncAnthropic) -> None:
    received: list[str] = []
    with pytest.raises(APIStatusError) as caught:
        async with client.messages.stream(**request("Research tea [sim:fault=stream_error]")) as stream:
            async for event in stream:
                received.append(event.type)

    assert caught.value.status_code == 200 and caught.value.type == "overloaded_error"
    assert "message_start" in received and "content_block_start" in received
    assert "message_stop" not in received


async def test_a_disconnect_mid_stream_is_a_transport_error(client: AsyncAnthropic) -> None:
    received: list[str] = []
    # The SDK's releases differ in how they wrap a mid-body failure (raw, or in APIConnectionError
    # from 2.17): what matters is that the connection broke after the stream began.
    with pytest.raises(Exception) as caught:
        async with client.messages.stream(**request("Research tea [sim:fault=disconnect]")) as stream:
            async for event in stream:
                received.append(event.type)
    assert any(isinstance(link, httpx2.RemoteProtocolError) for link in causes(caught.value))
    failure = failure_of(caught.value)
    assert failure is not None and failure.ending is Ending.BROKEN
    assert "message_start" in received


async def test_a_disconnect_before_a_non_streamed_response_is_a_connection_error(
    client: AsyncAnthropic,
) -> None:
    with pytest.raises(APIConnectionError):
        await client.messages.create(**request("Research tea [sim:fault=disconnect]"))


async def test_slow_fault_delays_the_first_byte(start_simulator: StartSimulator) -> None:
    client = sdk(await start_simulator(SimulatorSettings(slow_first_byte_s=0.4, faults={"slow": 1.0})))
    started = time.monotonic()
    message = await client.messages.create(**request())

    assert time.monotonic() - started >= 0.4 and message.stop_reason == "end_turn"


async def test_the_sdk_retries_a_fault_limited_to_the_first_attempts(start_simulator: StartSimulator) -> None:
    sim = await start_simulator()
    client = AsyncAnthropic(base_url=sim.base_url, api_key="test", max_retries=3)

    message = await client.messages.create(**request("Research tea [sim:fault=overloaded:2]"))

    assert message.stop_reason == "end_turn"
    assert [r.status for r in sim.stats.recent] == [529, 529, 200]


async def _outcomes(start_simulator: StartSimulator, seed: int) -> list[str]:
    faults = {"overloaded": 0.3, "server_error": 0.2, "rate_limit": 0.2}
    client = sdk(await start_simulator(SimulatorSettings(seed=seed, faults=faults, pause_turn_probability=0)))
    outcomes = []
    for i in range(16):
        try:
            await client.messages.create(**request(f"Research topic number {i}", max_tokens=50))
            outcomes.append("ok")
        except APIStatusError as error:
            outcomes.append(str(error.status_code))
    return outcomes


async def test_faults_are_deterministic_for_a_seed(start_simulator: StartSimulator) -> None:
    first = await _outcomes(start_simulator, seed=11)
    again = await _outcomes(start_simulator, seed=11)
    other = await _outcomes(start_simulator, seed=12)

    assert first == again
    assert {"ok", "529"} <= set(first) and first != other


async def test_pacing_spreads_a_stream_over_time(start_simulator: StartSimulator) -> None:
    settings = SimulatorSettings(latency_ms=100, tokens_per_second=2_000, output_tokens_per_turn=(400, 400))
    client = sdk(await start_simulator(settings))
    started = time.monotonic()
    async with client.messages.stream(**request(tools=[])) as stream:
        message = await stream.get_final_message()

    assert time.monotonic() - started >= 0.1 + 0.8 * message.usage.output_tokens / 2_000


async def test_a_stream_cut_anywhere_records_what_it_had_billed(start_simulator: StartSimulator) -> None:
    """Cut at a random frame: nothing billed before ``message_start``, all of it once ``message_delta``
    went out, else the prompt and what was sent (output tokens, search results that ran)."""
    whole = await start_simulator(SimulatorSettings(seed=9, pause_turn_probability=0.0))
    cut = await start_simulator(
        SimulatorSettings(
            seed=9, pause_turn_probability=0.0, faults={"stream_error": 1.0}, stream_cut="anywhere"
        )
    )
    last_seen: set[str] = set()
    for n in range(30):
        params = request(f"Research tea, angle {n}")
        full = (await sdk(whole).messages.create(**params)).usage
        kinds: list[str] = []
        results = 0
        with pytest.raises(APIStatusError):
            async with sdk(cut).messages.stream(**params) as stream:
                async for event in stream:
                    kinds.append(event.type)
                    block = getattr(event, "content_block", None)
                    if event.type == "content_block_start" and block.type == "web_search_tool_result":
                        results += isinstance(block.content, list)
        billed = cut.stats.recent[-1].usage
        last_seen.add(kinds[-1] if kinds else "nothing")
        if "message_start" not in kinds:
            assert billed is None
            continue
        assert billed is not None
        if "message_delta" in kinds:
            assert (
                billed["output_tokens"] == full.output_tokens and billed["input_tokens"] == full.input_tokens
            )
            continue
        assert billed["output_tokens"] <= full.output_tokens and billed["input_tokens"] <= full.input_tokens
        assert billed["server_tool_use"]["web_search_requests"] == results
    assert {"nothing", "message_delta"} <= last_seen and len(last_seen) >= 4, last_seen
