"""Organisation rate limits: 429 with retry-after when exceeded, and headers that count down."""

from __future__ import annotations

import pytest
from anthropic import RateLimitError

from core.config.simulator import RateLimits
from core.simulator import SimulatorSettings
from tests.core.simulator.conftest import StartSimulator, request, sdk


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_requests_per_minute_exceeded_gives_429_with_retry_after(
    start_simulator: StartSimulator,
) -> None:
    clock = Clock()
    settings = SimulatorSettings(rate_limits=RateLimits(requests_per_minute=2))
    client = sdk(await start_simulator(settings, clock=clock))
    await client.messages.create(**request())
    await client.messages.create(**request())

    with pytest.raises(RateLimitError) as caught:
        await client.messages.create(**request())

    headers = caught.value.response.headers
    assert headers["retry-after"] == "30" and headers["x-should-retry"] == "true"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    clock.now += 30
    assert (await client.messages.create(**request())).stop_reason == "end_turn"


async def test_input_tokens_per_minute_are_enforced(start_simulator: StartSimulator) -> None:
    settings = SimulatorSettings(rate_limits=RateLimits(input_tokens_per_minute=3_000))
    client = sdk(await start_simulator(settings, clock=Clock()))
    await client.messages.create(**request("word " * 1_600))  # about 2,300 tokens with the tool

    with pytest.raises(RateLimitError, match="input tokens"):
        await client.messages.create(**request("word " * 1_600))


async def test_output_tokens_per_minute_are_enforced(start_simulator: StartSimulator) -> None:
    settings = SimulatorSettings(rate_limits=RateLimits(output_tokens_per_minute=100))
    client = sdk(await start_simulator(settings, clock=Clock()))
    await client.messages.create(**request())  # hundreds of output tokens: the bucket goes negative

    with pytest.raises(RateLimitError, match="output tokens"):
        await client.messages.create(**request())


async def test_headers_count_down_the_configured_limits(start_simulator: StartSimulator) -> None:
    settings = SimulatorSettings(rate_limits=RateLimits(requests_per_minute=50))
    client = sdk(await start_simulator(settings, clock=Clock()))
    raw = await client.messages.with_raw_response.create(**request())

    assert raw.headers["anthropic-ratelimit-requests-limit"] == "50"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "49"
