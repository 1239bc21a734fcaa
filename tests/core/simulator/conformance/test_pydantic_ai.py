"""pydantic-ai (its own Anthropic message conversion) driving the simulator.

Needs the ``conformance`` extra (``pip install -e '.[conformance]'``); skipped with that reason otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

import pytest
from anthropic import AsyncAnthropic
from pydantic import BaseModel

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.conftest import StartSimulator

pydantic_ai = pytest.importorskip(
    "pydantic_ai", reason="pydantic-ai is not installed: pip install -e '.[conformance]'"
)
from pydantic_ai import Agent, ToolOutput, WebSearchTool  # noqa: E402
from pydantic_ai.capabilities import NativeTool  # noqa: E402
from pydantic_ai.exceptions import ModelHTTPError  # noqa: E402
from pydantic_ai.messages import ModelRequest  # noqa: E402
from pydantic_ai.models import ModelRequestParameters  # noqa: E402
from pydantic_ai.models.anthropic import AnthropicModel  # noqa: E402
from pydantic_ai.providers.anthropic import AnthropicProvider  # noqa: E402

MODEL = "claude-sonnet-5"
SEARCH = [NativeTool(WebSearchTool())]  # the API's own search tool, not a local one


class Forecast(BaseModel):
    city: str
    days: list[int]
    summary: str | None = None


def model_for(sim: Simulator, retries: int = 0) -> AnthropicModel:
    client = AsyncAnthropic(base_url=sim.base_url, api_key="sim", max_retries=retries)
    return AnthropicModel(MODEL, provider=AnthropicProvider(anthropic_client=client))


@pytest.fixture
async def recording(start_simulator: StartSimulator) -> Simulator:
    settings = SimulatorSettings(seed=5, pause_turn_probability=0.0, retry_after_s=0.2)
    return await start_simulator(settings, record_bodies=True)


def sent_tools(sim: Simulator) -> list[list[str]]:
    return [[str(t.get("name")) for t in body.get("tools") or []] for body in sim.stats.bodies]


async def test_web_search_not_streamed(recording: Simulator) -> None:
    agent = Agent(model_for(recording), capabilities=SEARCH)
    result = await agent.run("Research sodium-ion batteries for grid storage")

    assert isinstance(result.output, str) and result.output
    assert sent_tools(recording) == [["web_search"]]
    assert recording.stats.by_status == {200: 1}


async def test_web_search_streamed(recording: Simulator) -> None:
    agent = Agent(model_for(recording), capabilities=SEARCH)
    async with agent.run_stream("Research tidal power in Scotland") as result:
        output = await result.get_output()

    assert output and recording.stats.bodies[0].get("stream") is True
    assert recording.stats.by_status == {200: 1}


async def test_a_paused_turn_continues_through_pydantic_ais_own_conversion(recording: Simulator) -> None:
    agent = Agent(model_for(recording), capabilities=SEARCH)
    result = await agent.run("Research geothermal heating in Iceland [sim:pause_turn]")

    assert result.output
    statuses = [r.status for r in recording.stats.recent]
    assert statuses == [200] * len(statuses) and len(statuses) >= 2, statuses
    resent = recording.stats.bodies[1]["messages"][-1]
    assert resent["role"] == "assistant" and resent["content"][-1]["type"] == "server_tool_use"


async def test_structured_output_natively_and_through_an_output_tool(recording: Simulator) -> None:
    native = await Agent(model_for(recording), output_type=Forecast).run("Forecast for Paris")
    forced = await Agent(model_for(recording), output_type=ToolOutput(Forecast)).run("Forecast for Rome")

    assert isinstance(native.output, Forecast) and isinstance(forced.output, Forecast)
    first, second = recording.stats.bodies[0], recording.stats.bodies[1]
    assert "output_config" in first or "output_format" in first
    assert second["tools"] and second["tools"][0]["input_schema"]["required"] == ["city", "days"]


async def test_a_function_tool_is_called_and_its_result_answered(recording: Simulator) -> None:
    agent = Agent(model_for(recording))
    calls: list[dict[str, Any]] = []

    @agent.tool_plain
    def get_weather(location: str, units: Literal["c", "f"]) -> str:
        """Lookup the weather for a given city."""
        calls.append({"location": location, "units": units})
        return "Sunny, 21 degrees"

    result = await agent.run("What is the weather in Lisbon?")

    assert calls and calls[0]["units"] in ("c", "f")
    assert "Sunny, 21 degrees" in result.output


async def test_count_tokens(recording: Simulator) -> None:
    model = model_for(recording)
    english = await model.count_tokens(
        [ModelRequest.user_text_prompt("word " * 400)], None, ModelRequestParameters()
    )
    chinese = await model.count_tokens(
        [ModelRequest.user_text_prompt("电池储能" * 500)], None, ModelRequestParameters()
    )
    assert 400 <= (english.input_tokens or 0) < 700
    assert (chinese.input_tokens or 0) > 3 * (english.input_tokens or 0)


async def test_a_429_with_retry_after(recording: Simulator) -> None:
    agent = Agent(model_for(recording), capabilities=SEARCH)
    with pytest.raises(ModelHTTPError) as caught:
        await agent.run("Research wave power [sim:fault=rate_limit]")
    assert caught.value.status_code == 429

    patient = Agent(model_for(recording, retries=2), capabilities=SEARCH)
    assert (await patient.run("Research wind power [sim:fault=rate_limit]")).output


async def test_a_mid_stream_error(recording: Simulator) -> None:
    agent = Agent(model_for(recording), capabilities=SEARCH)
    with pytest.raises(Exception, match=r"(?i)overloaded"):
        async with agent.run_stream("Research hydrogen storage [sim:fault=stream_error]") as result:
            await result.get_output()
