"""``tool_choice: none`` keeps the web search tool defined (a conversation holding searches needs it)
while no search can run: the report turn relies on it to send no search allowance."""

from __future__ import annotations

from anthropic import AsyncAnthropic

from core.simulator import SimulatorSettings
from tests.core.simulator.conftest import StartSimulator, request


async def test_no_search_runs_under_tool_choice_none(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SimulatorSettings(pause_turn_probability=0.0, searches_per_turn=(3, 3)))
    async with AsyncAnthropic(base_url=sim.base_url, api_key="sk-test", max_retries=0) as client:
        searched = await client.messages.create(**request())
        assert searched.usage.server_tool_use is not None
        assert searched.usage.server_tool_use.web_search_requests == 3
        history = [
            {"role": "user", "content": "Research sodium-ion batteries for grid storage"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in searched.content]},
            {"role": "user", "content": "Now write your report."},
        ]
        report = await client.messages.create(**request(messages=history, tool_choice={"type": "none"}))
    assert not [b for b in report.content if b.type == "server_tool_use"]
    assert report.usage.server_tool_use is None or report.usage.server_tool_use.web_search_requests == 0
