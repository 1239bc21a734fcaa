"""Fixtures: a running simulator per test and an SDK client pointed at it (no SDK retries)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from anthropic import AsyncAnthropic

from core.simulator import Simulator, SimulatorSettings

MODEL = "claude-sonnet-5"
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}

StartSimulator = Callable[..., Awaitable[Simulator]]


def request(
    prompt: str = "Research sodium-ion batteries for grid storage", **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments of a typical research request."""
    params: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": prompt}],
        "tools": [WEB_SEARCH],
    }
    params.update(overrides)
    return params


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    """Start simulators with given settings; all are stopped after the test."""
    async with AsyncExitStack() as stack:

        async def start(settings: SimulatorSettings | None = None, **kwargs: Any) -> Simulator:
            settings = settings or SimulatorSettings(pause_turn_probability=0.0)
            return await stack.enter_async_context(Simulator(settings, **kwargs))

        yield start


@pytest.fixture
async def sim(start_simulator: StartSimulator) -> Simulator:
    return await start_simulator()


def sdk(sim: Simulator, api_key: str = "test") -> AsyncAnthropic:
    return AsyncAnthropic(base_url=sim.base_url, api_key=api_key, max_retries=0)


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[AsyncAnthropic]:
    async with sdk(sim) as client:
        yield client
