"""Client tools (tool_use, tool_choice, tool_result), structured output and answers sized to the request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import TextBlock, ToolUseBlock
from pydantic import BaseModel, ConfigDict

from core.simulator import Simulator
from tests.core.simulator.conftest import MODEL, WEB_SEARCH
from tests.core.simulator.test_wire_shapes import parse_sse

RECORDED = Path(__file__).parents[2] / "fixtures" / "anthropic-recorded"  # see its README
HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01"}


class Weather(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location: str
    units: str


class Forecast(BaseModel):
    city: str
    days: list[int]
    warnings: list[str] | None = None


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Lookup the weather for a given city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
        "required": ["location", "units"],
        "additionalProperties": False,
    },
}
FORECAST_TOOL = {
    "name": "get_forecast",
    "description": "Weather forecast for the coming days",
    "input_schema": Forecast.model_json_schema(),
}


def params(prompt: str, **overrides: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
        **overrides,
    }


async def streamed_and_created(client: AsyncAnthropic, request: dict[str, Any]) -> Any:
    async with client.messages.stream(**request) as stream:
        streamed = await stream.get_final_message()
    created = await client.messages.create(**request)
    assert streamed.model_dump() == created.model_dump()
    return created


async def test_a_forced_tool_is_called_with_input_valid_for_its_schema(client: AsyncAnthropic) -> None:
    request = params(
        "Weather in Lisbon?", tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"}
    )
    message = await streamed_and_created(client, request)

    assert message.stop_reason == "tool_use"
    (call,) = message.content
    assert isinstance(call, ToolUseBlock) and call.name == "get_weather" and call.id.startswith("toolu_")
    Weather.model_validate(call.input)
    assert call.input["units"] in ("c", "f")


async def test_tool_use_streams_input_json_deltas_like_the_recording(sim: Simulator) -> None:
    request = params("Weather in Oslo?", tools=[WEATHER_TOOL], stream=True)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.base_url}/v1/messages", json=request, headers=HEADERS) as response,
    ):
        frames = parse_sse(await response.text())

    start = next(p for n, p, _ in frames if n == "content_block_start")["content_block"]
    assert start["type"] == "tool_use" and start["input"] == {} and start["caller"] == {"type": "direct"}
    deltas = [p["delta"] for n, p, _ in frames if n == "content_block_delta"]
    assert deltas[0] == {"type": "input_json_delta", "partial_json": ""}
    Weather.model_validate(json.loads("".join(d["partial_json"] for d in deltas)))
    assert next(p for n, p, _ in frames if n == "message_delta")["delta"]["stop_reason"] == "tool_use"


async def test_tool_choice_any_none_and_auto(client: AsyncAnthropic) -> None:
    tools = [WEATHER_TOOL, FORECAST_TOOL]
    forced = await client.messages.create(
        **params("Tell me a joke", tools=tools, tool_choice={"type": "any"})
    )
    assert forced.stop_reason == "tool_use" and isinstance(forced.content[0], ToolUseBlock)

    none = await client.messages.create(
        **params("Weather in Rome?", tools=tools, tool_choice={"type": "none"})
    )
    assert none.stop_reason == "end_turn" and all(isinstance(b, TextBlock) for b in none.content)

    research = params("Research sodium-ion batteries", tools=[*tools, WEB_SEARCH])
    assert not any(isinstance(b, ToolUseBlock) for b in (await client.messages.create(**research)).content)

    asked = await client.messages.create(
        **params("What is the weather forecast in Rome?", tools=[*tools, WEB_SEARCH])
    )
    assert asked.stop_reason == "tool_use"


async def test_parallel_calls_unless_disabled(client: AsyncAnthropic) -> None:
    tools = [WEATHER_TOOL, FORECAST_TOOL]
    prompt = "What is the weather now and the forecast for Rome?"
    both = await client.messages.create(**params(prompt, tools=tools))
    one = await client.messages.create(
        **params(prompt, tools=tools, tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    )

    assert sorted(b.name for b in both.content if isinstance(b, ToolUseBlock)) == [
        "get_forecast",
        "get_weather",
    ]
    assert len([b for b in one.content if isinstance(b, ToolUseBlock)]) == 1
    Forecast.model_validate(
        next(b for b in both.content if isinstance(b, ToolUseBlock) and b.name == "get_forecast").input
    )


async def test_a_tool_result_continuation_answers_in_text(client: AsyncAnthropic) -> None:
    first = await client.messages.create(**params("Weather in Oslo?", tools=[WEATHER_TOOL]))
    call = first.content[0]
    assert isinstance(call, ToolUseBlock)
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        first.to_param(),
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21°C"}],
        },
    ]
    answer = await streamed_and_created(client, params("", messages=history, tools=[WEATHER_TOOL]))

    assert answer.stop_reason == "end_turn"
    text = "".join(b.text for b in answer.content if isinstance(b, TextBlock))
    assert "get_weather" in text and "Sunny, 21°C" in text


async def test_structured_output_follows_the_schema(client: AsyncAnthropic) -> None:
    fmt = {"type": "json_schema", "schema": Forecast.model_json_schema()}
    for key, value in (("output_format", fmt), ("output_config", {"format": fmt})):
        message = await client.post(
            "/v1/messages", body=params("Forecast for Paris", **{key: value}), cast_to=dict[str, Any]
        )
        assert message["stop_reason"] == "end_turn"
        Forecast.model_validate_json(message["content"][0]["text"])


@pytest.mark.parametrize("max_tokens", [20, 60, 100, 400])
async def test_short_prompts_get_short_answers_within_max_tokens(
    client: AsyncAnthropic, max_tokens: int
) -> None:
    for prompt in (
        "say hi",
        "hello there",
        "What is 2+2?",
        "Explain briefly what a heat pump does for a house.",
    ):
        message = await client.messages.create(**params(prompt, max_tokens=max_tokens))
        text = "".join(b.text for b in message.content if isinstance(b, TextBlock))

        assert message.usage.output_tokens <= max_tokens
        assert message.stop_reason == ("end_turn" if max_tokens >= 40 else message.stop_reason)
        assert "search" not in text.lower() and "I'll look" not in text


async def test_a_long_prompt_finishes_before_max_tokens_when_it_can(client: AsyncAnthropic) -> None:
    prompt = "Please explain in detail how grid-scale storage works. " * 12
    message = await client.messages.create(**params(prompt, max_tokens=120))

    assert message.stop_reason == "end_turn" and message.usage.output_tokens <= 120


def recorded(name: str) -> list[dict[str, Any]]:
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    exchanges: list[dict[str, Any]] = json.loads(path.read_text())
    return exchanges


async def test_the_recorded_tool_use_stream_requests_are_answered_alike(sim: Simulator) -> None:

    for exchange in recorded("tool-use-stream.json"):
        request_body = exchange["request"]["body"]
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{sim.base_url}/v1/messages", json=request_body, headers=HEADERS) as response,
        ):
            text = await response.text()
        assert response.status == exchange["response"]["status_code"] == 200
        ours, real = parse_sse(text), parse_sse(exchange["response"]["body"])
        real_stop = next(p for n, p, _ in real if n == "message_delta")["delta"]["stop_reason"]
        our_stop = next(p for n, p, _ in ours if n == "message_delta")["delta"]["stop_reason"]
        assert our_stop == real_stop
        assert next(n for n, _, _ in ours if n != "ping") == "message_start"
        for (name, payload, _), (real_name, real_payload, _) in zip(ours[:2], real[:2], strict=True):
            assert name == real_name
            if name == "content_block_start":
                assert set(payload["content_block"]) == set(real_payload["content_block"])
        real_start = real[0][1]["message"]
        assert ours[0][1]["message"]["model"] == real_start["model"]
        kinds = {p["delta"]["type"] for n, p, _ in ours if n == "content_block_delta"}
        real_kinds = {p["delta"]["type"] for n, p, _ in real if n == "content_block_delta"}
        assert kinds == real_kinds
