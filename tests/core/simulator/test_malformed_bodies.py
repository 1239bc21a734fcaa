"""Any malformed body gets the API's 400, never a 500 or a traceback: a 500 makes clients retry forever."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import aiohttp
import pytest

from core.simulator import Simulator
from core.simulator.body import MAX_DEPTH
from tests.core.simulator.conftest import request

HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def valid(**overrides: Any) -> dict[str, Any]:
    return request(max_tokens=256, **overrides)


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate goes out as the escape \ud800


def nested_schema(levels: int) -> dict[str, Any]:
    """An object schema whose properties nest ``levels`` times (two JSON levels each)."""
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


MALFORMED: dict[str, bytes] = {
    "an array nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "an object nested 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "a lone surrogate in the text": encoded(valid(messages=[{"role": "user", "content": "a\ud800b"}])),
    "a lone surrogate in a key": b'{"\\udfff": 1, ' + encoded(valid())[1:],
    "a lone surrogate in the system prompt": encoded(valid(system="\udc00")),
    "NaN": encoded(valid(temperature=float("nan"))),
    "Infinity": encoded(valid()).replace(b'"max_tokens": 256', b'"max_tokens": Infinity'),
    "a 5,000-digit number": encoded(valid()).replace(b'"max_tokens": 256', b'"max_tokens": ' + b"9" * 5000),
    "bytes that are not UTF-8": b'{"model": "\xff\xfe"}',
    f"a tool schema nested {MAX_DEPTH + 1} deep": encoded(
        valid(tools=[{"name": "t", "input_schema": nested_schema(MAX_DEPTH // 2)}])
    ),
    "not JSON at all": b"model=claude",
    "empty": b"",
}


def simulator_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The simulator's own error records: the capture also holds other loggers' records, such as
    asyncio's note about an SDK client an earlier test left to the garbage collector."""
    return [r for r in caplog.records if r.name.startswith("core.simulator")]


async def post(sim: Simulator, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.base_url + path, data=body, headers=HEADERS) as response,
    ):
        text = await response.text()
        streamed = response.content_type == "text/event-stream"  # a variation the API takes
        return response.status, {} if streamed else json.loads(text)


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_body_is_answered_400_invalid_request_error(
    sim: Simulator, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="core.simulator"):
        for path in PATHS:
            status, answer = await post(sim, path, MALFORMED[case])
            assert status == 400, (path, answer)
            assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
            assert "parsing the body" in answer["error"]["message"] or path.endswith("count_tokens")
    assert not simulator_errors(caplog)  # no traceback logged


def mutate(value: Any, rng: random.Random) -> Any:
    """Replace one node of a valid body with something hostile."""
    hostile: list[Any] = [
        None, True, -1, 0, 2**70, 1.5, "", "\ud800", "x" * 10_000, [], {}, [[[[[]]]]], {"": {"": {}}},
        {"type": "text"}, [{"type": "bogus"}], {"\udbff": 1},
    ]  # fmt: skip
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        return {**value, key: mutate(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [*value[:index], mutate(value[index], rng), *value[index + 1 :]]
    return rng.choice(hostile)


async def test_hostile_variations_of_a_valid_request_never_get_a_500(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(24)
    bases = [
        valid(),
        valid(stream=True, system=[{"type": "text", "text": "be brief"}]),
        valid(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}], tools=None),
    ]
    statuses: dict[int, int] = {}
    with caplog.at_level(logging.ERROR, logger="core.simulator"):
        for _ in range(300):
            body = mutate(rng.choice(bases), rng)
            status, _answer = await post(sim, rng.choice(PATHS), encoded(body))
            statuses[status] = statuses.get(status, 0) + 1
            assert status < 500, body
    assert statuses.get(400, 0) > 100  # most hostile variations are refused, not answered
    assert not simulator_errors(caplog)
