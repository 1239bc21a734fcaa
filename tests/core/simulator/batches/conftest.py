"""Batch fixtures: a simulator whose batches end quickly, an SDK client on it, and small helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from core.simulator import Simulator, SimulatorSettings
from core.simulator.batches.batch import Batch
from tests.core.simulator.conftest import StartSimulator, request, sdk
from tests.waits import eventually

QUICK = SimulatorSettings(pause_turn_probability=0.0, batch_processing_s=0.2)
"""Batches that end within a fraction of a second: for tests about what they end with."""


def entry(custom_id: str, prompt: str = "Research sodium-ion batteries", **overrides: Any) -> dict[str, Any]:
    """One batch request: ``custom_id`` and typical research params."""
    return {"custom_id": custom_id, "params": request(prompt, **overrides)}


def held(sim: Simulator, batch_id: str) -> Batch:
    """The simulator's own record of a batch (to wait on it without polling the API)."""
    return sim.state.batches.get(batch_id)


async def ended(sim: Simulator, client: AsyncAnthropic, batch_id: str) -> MessageBatch:
    """The batch as the API returns it once it has ended."""
    await eventually(lambda: held(sim, batch_id).ended, f"batch {batch_id} to end")
    return await client.messages.batches.retrieve(batch_id)


async def results(client: AsyncAnthropic, batch_id: str) -> dict[str, MessageBatchIndividualResponse]:
    """The batch's results by custom_id, read through the SDK's JSON Lines decoder."""
    lines = [line async for line in await client.messages.batches.results(batch_id)]
    by_id = {line.custom_id: line for line in lines}
    assert len(by_id) == len(lines), "one result line per custom_id"
    return by_id


@pytest.fixture
async def quick_sim(start_simulator: StartSimulator) -> Simulator:
    return await start_simulator(QUICK)


@pytest.fixture
async def quick(quick_sim: Simulator) -> AsyncIterator[AsyncAnthropic]:
    async with sdk(quick_sim) as client:
        yield client
