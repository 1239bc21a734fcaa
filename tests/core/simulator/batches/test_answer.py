"""A batch request is answered as ``POST /v1/messages`` answers the same body, with a longer server loop."""

from __future__ import annotations

from typing import Any

from anthropic import AsyncAnthropic
from anthropic.types import ServerToolUseBlock, WebSearchToolResultBlock
from anthropic.types.messages import MessageBatchErroredResult, MessageBatchSucceededResult

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.batches.conftest import ended, entry, results
from tests.core.simulator.conftest import StartSimulator, sdk

PAUSING = "Research geothermal heating in northern Europe [sim:pause_turn]"


async def succeeded(sim: Simulator, client: AsyncAnthropic, *requests: dict[str, Any]) -> dict[str, Any]:
    """Submit one batch, wait for its end, and return each succeeded result's message by custom_id."""
    created = await client.messages.batches.create(requests=list(requests))
    await ended(sim, client, created.id)
    out: dict[str, Any] = {}
    for custom_id, line in (await results(client, created.id)).items():
        assert isinstance(line.result, MessageBatchSucceededResult), line
        out[custom_id] = line.result.message
    return out


async def test_a_batch_result_is_the_synchronous_answer_billed_as_batch(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    params = entry("a")["params"]
    synchronous = await quick.messages.create(**params)
    batched = (await succeeded(quick_sim, quick, entry("a")))["a"]

    assert batched.usage.service_tier == "batch" and synchronous.usage.service_tier == "standard"
    same = {"exclude": {"usage": {"service_tier"}}}
    assert batched.model_dump(**same) == synchronous.model_dump(**same)  # ids, content, citations, tokens


async def test_a_batch_turn_searches_longer_before_it_pauses_and_its_continuation_resumes(
    start_simulator: StartSimulator,
) -> None:
    settings = SimulatorSettings(pause_turn_probability=0.0, batch_processing_s=0.2, server_loop_limit=3)
    sim = await start_simulator(settings)
    async with sdk(sim) as client:
        synchronous = await client.messages.create(**entry("s", PAUSING)["params"])
        paused = (await succeeded(sim, client, entry("p", PAUSING)))["p"]

        assert synchronous.stop_reason == paused.stop_reason == "pause_turn"
        assert synchronous.usage.server_tool_use is not None and paused.usage.server_tool_use is not None
        assert synchronous.usage.server_tool_use.web_search_requests == settings.server_loop_limit
        assert paused.usage.server_tool_use.web_search_requests == settings.batch_loop_limit == 6
        pending = paused.content[-1]
        assert isinstance(pending, ServerToolUseBlock)

        # Continued in the next batch: the paused content sent back unchanged as the assistant turn.
        params = entry("c", PAUSING)["params"]
        params["messages"] = [
            *params["messages"],
            {"role": "assistant", "content": paused.to_param()["content"]},
        ]
        resumed = (await succeeded(sim, client, {"custom_id": "c", "params": params}))["c"]

    first = resumed.content[0]
    assert isinstance(first, WebSearchToolResultBlock) and first.tool_use_id == pending.id
    assert resumed.stop_reason == "end_turn"


async def test_an_injected_fault_errors_the_attempt_and_a_resubmission_succeeds(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    """What the engine's retry of an errored request meets: the first attempt fails, the next one passes."""
    failing = entry("a", "Research wave power [sim:fault=server_error]")
    overloaded = entry("b", "Research wind power [sim:fault=overloaded]")
    created = await quick.messages.batches.create(requests=[failing, overloaded])
    await ended(quick_sim, quick, created.id)
    first = await results(quick, created.id)

    errors = {}
    for custom_id, line in first.items():
        assert isinstance(line.result, MessageBatchErroredResult)
        errors[custom_id] = line.result.error.error.type
    assert errors == {"a": "api_error", "b": "overloaded_error"}
    again = await succeeded(quick_sim, quick, failing, overloaded)
    assert sorted(again) == ["a", "b"]


async def test_prompt_caching_reads_what_an_earlier_request_wrote(
    quick_sim: Simulator, quick: AsyncAnthropic
) -> None:
    system = [
        {"type": "text", "text": "Background. " * 800, "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    first = (await succeeded(quick_sim, quick, entry("a", system=system)))["a"]
    second = (await succeeded(quick_sim, quick, entry("b", "Research tidal power", system=system)))["b"]

    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
