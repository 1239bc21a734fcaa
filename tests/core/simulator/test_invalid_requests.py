"""Invalid requests get the real API's status, error type and message shape; recorded exchanges replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.simulator import Simulator
from tests.core.simulator.conftest import WEB_SEARCH, request

RECORDED = Path(__file__).parents[2] / "fixtures" / "anthropic-recorded"  # see its README
HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
WEATHER = {
    "name": "get_weather",
    "description": "Lookup the weather for a given city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "units": {"type": "string", "enum": ["c", "f"]}},
        "required": ["location", "units"],
    },
}
TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_01A",
    "name": "get_weather",
    "input": {"location": "SF", "units": "c"},
}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "20°C"}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def body(**overrides: Any) -> dict[str, Any]:
    params = request(tools=[WEATHER], max_tokens=1024)
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def without(key: str) -> dict[str, Any]:
    params = body()
    del params[key]
    return params


BAD, NOT_FOUND = (400, "invalid_request_error"), (404, "not_found_error")
UNAUTHORIZED = (401, "authentication_error")
NO_VERSION = {k: v for k, v in HEADERS.items() if k != "anthropic-version"}
NO_KEY = {k: v for k, v in HEADERS.items() if k != "x-api-key"}
# (case, body, headers, (status, error type), a fragment of the message)
CASES: list[tuple[str, Any, dict[str, str], tuple[int, str], str]] = [
    ("unknown model", body(model="claude-imaginary-9"), HEADERS, NOT_FOUND, "model: claude-imaginary-9"),
    ("max_tokens above the model's limit", body(model="claude-haiku-4-5", max_tokens=100_000), HEADERS, BAD,
      "64000, which is the maximum allowed number of output tokens for claude-haiku-4-5-20251001"),
    ("orphan tool_result", body(messages=[user("Weather?"), user([TOOL_RESULT])]), HEADERS, BAD,
      "messages.0.content.1: unexpected `tool_use_id` found in `tool_result` blocks"),
    ("tool_use without tool_result", body(messages=[user("Weather?"), assistant([TOOL_USE]), user("and?")]),
     HEADERS, BAD,  "`tool_use` ids were found without `tool_result` blocks immediately"),
    ("tool_choice naming an unknown tool", body(tool_choice={"type": "tool", "name": "nope"}), HEADERS, BAD,
      "tool_choice.tool.name"),
    ("tool_choice without tools", body(tools=None, tool_choice={"type": "any"}), HEADERS, BAD,
      "tool_choice may only be specified while providing tools"),
    ("tool_choice of an unknown type", body(tool_choice={"type": "some"}), HEADERS, BAD,
     "tool_choice: Input tag 'some'"),
    ("unknown top-level field", body(temperatur=0.5), HEADERS, BAD,
     "temperatur: Extra inputs are not permitted"),
    ("empty text block", body(messages=[user([{"type": "text", "text": ""}])]), HEADERS, BAD,
      "text content blocks must be non-empty"),
    ("whitespace-only user text", body(messages=[user("  \n")]), HEADERS, BAD,
     "must contain non-whitespace text"),
    ("trailing whitespace in a final assistant message", body(messages=[user("Hi"), assistant("Sure, ")]),
     HEADERS, BAD,  "final assistant content cannot end with trailing whitespace"),
    ("temperature above 1", body(temperature=1.5), HEADERS, BAD,
     "temperature: Input should be less than or equal to 1"),
    ("top_p below 0", body(top_p=-0.1), HEADERS, BAD,  "top_p: Input should be greater"),
    ("top_k not an integer", body(top_k=2.5), HEADERS, BAD,  "top_k: Input should be a valid integer"),
    ("missing anthropic-version", body(), NO_VERSION, BAD,
      "anthropic-version: header is required"),
    ("malformed anthropic-version", body(), {**HEADERS, "anthropic-version": "latest"}, BAD,
      "anthropic-version"),
    ("unknown anthropic-beta", body(), {**HEADERS, "anthropic-beta": "make-it-fast"}, BAD,
      "for the `anthropic-beta` header"),
    ("no max_tokens", without("max_tokens"), HEADERS, BAD,  "max_tokens: Field required"),
    ("max_tokens zero", body(max_tokens=0), HEADERS, BAD,  "greater than or equal to 1"),
    ("max_tokens a string", body(max_tokens="100"), HEADERS, BAD,  "valid integer"),
    ("no model", without("model"), HEADERS, BAD,  "model: Field required"),
    ("no messages", without("messages"), HEADERS, BAD,  "messages: Field required"),
    ("empty messages", body(messages=[]), HEADERS, BAD,  "at least one message"),
    ("system role in messages", body(messages=[{"role": "system", "content": "x"}]), HEADERS, BAD,
      "messages.0.role: Input should be 'user' or 'assistant'"),
    ("unknown content block type", body(messages=[user([{"type": "txt", "text": "hi"}])]), HEADERS, BAD,
      "messages.0.content.0: Input tag 'txt'"),
    ("extra field in a message", body(messages=[{**user("hi"), "name": "bob"}]), HEADERS, BAD,
      "messages.0.name: Extra inputs are not permitted"),
    ("empty message content", body(messages=[user([]), assistant("ok"), user("hi")]), HEADERS, BAD,
      "all messages must have non-empty content"),
    ("tool_use in a user message", body(messages=[user([TOOL_USE])]), HEADERS, BAD,
     "`tool_use` blocks are not allowed in `user` messages"),
    ("whitespace stop sequence", body(stop_sequences=[" "]), HEADERS, BAD,
     "stop_sequences"),
    ("system of the wrong type", body(system=42), HEADERS, BAD,  "system:"),
    ("tool with an invalid name", body(tools=[{**WEATHER, "name": "get weather"}]), HEADERS, BAD,
      "tools.0.custom.name: String should match pattern"),
    ("tool without input_schema", body(tools=[{"name": "f"}]), HEADERS, BAD,
     "tools.0.custom.input_schema: Field required"),
    ("duplicate tool names", body(tools=[WEATHER, WEATHER]), HEADERS, BAD,
     "Tool names must be unique"),
    ("unknown metadata field", body(metadata={"user": "x"}), HEADERS, BAD,
     "metadata.user: Extra inputs are not permitted"),
    ("stream not a boolean", body(stream="yes"), HEADERS, BAD,  "stream:"),
    ("thinking budget not below max_tokens", body(thinking={"type": "enabled", "budget_tokens": 2048}),
     HEADERS, BAD,  "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ("unknown service_tier", body(service_tier="gold"), HEADERS, BAD,  "service_tier"),
    ("both domain filters", body(tools=[{**WEB_SEARCH, "allowed_domains": ["a.example"],
     "blocked_domains": ["b.example"]}]), HEADERS, BAD,  "allowed_domains and blocked"),
    ("invalid JSON", "{not json", HEADERS, BAD,  "There was an error parsing the body"),
    ("no API key", body(), NO_KEY, UNAUTHORIZED, "x-api-key"),
]  # fmt: skip


async def post(sim: Simulator, payload: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.base_url}/v1/messages", data=data.encode(), headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.json()


def test_the_table_covers_at_least_25_invalid_requests() -> None:
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("case", "payload", "headers", "expected", "fragment"), CASES, ids=[c[0] for c in CASES]
)
async def test_an_invalid_request_gets_the_apis_status_and_type(
    sim: Simulator, case: str, payload: Any, headers: dict[str, str], expected: tuple[int, str], fragment: str
) -> None:
    got, response_headers, answer = await post(sim, payload, headers)

    assert (got, answer["error"]["type"]) == expected, answer
    assert fragment in answer["error"]["message"]
    assert answer["type"] == "error" and answer["request_id"] == response_headers["request-id"]
    assert response_headers["x-should-retry"] == "false"


async def test_the_fixed_requests_are_accepted(sim: Simulator) -> None:
    """The valid neighbours of the table's cases succeed, so the checks are not over-eager."""
    valid = [
        body(),
        body(messages=[user("Weather?"), assistant([TOOL_USE]), user([TOOL_RESULT])]),
        body(
            messages=[
                user("Weather?"),
                assistant([TOOL_USE]),
                user([TOOL_RESULT, {"type": "text", "text": "ok"}]),
            ]
        ),
        body(tool_choice={"type": "tool", "name": "get_weather"}),
        body(tools=None, tool_choice={"type": "none"}),
        body(messages=[user("Hi"), assistant("Sure,")]),
        body(temperature=1, top_p=0.5, top_k=5, stop_sequences=["END"], metadata={"user_id": "u1"}),
        body(model="claude-haiku-4-5-20251001", max_tokens=64_000),
        body(thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=2048),
    ]
    for params in valid:
        status, _, answer = await post(
            sim, params, {**HEADERS, "anthropic-beta": "structured-outputs-2025-12-15"}
        )
        assert status == 200, (params, answer)


def recorded(name: str) -> list[dict[str, Any]]:
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    exchanges: list[dict[str, Any]] = json.loads(path.read_text())
    return exchanges


async def test_the_recorded_400_is_answered_alike(sim: Simulator) -> None:
    for exchange in recorded("400-invalid-request.json"):
        status, headers, answer = await post(sim, exchange["request"]["body"], HEADERS)
        real = exchange["response"]
        assert status == real["status_code"]
        if status != 200:
            assert answer["error"] == {**real["body"]["error"], "message": answer["error"]["message"]}
            assert answer["error"]["message"] == real["body"]["error"]["message"]
            assert headers["x-should-retry"] == real["headers"]["x-should-retry"]
        else:
            assert answer["model"] == real["body"]["model"]
            assert answer["stop_reason"] in ("tool_use", "end_turn")
