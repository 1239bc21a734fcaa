"""Recorded API exchanges, read back as the SDK transport yields or raises them.

The fixtures are real HTTP responses recorded against the API (``tests/fixtures/anthropic-recorded``).
Each is served to the real SDK through httpx's ``MockTransport`` (no socket) and read by
:class:`core.api.sdk.AnthropicTransport`: what it yields, and the error it raises, is the
recording a :class:`core.api.replay.ReplayTransport` replays.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
from anthropic import AsyncAnthropic

from core.api.replay import Exchange
from core.api.sdk import AnthropicTransport

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic-recorded"
REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Research sodium-ion batteries for grid storage"}],
}
SSE_HEADERS = {"content-type": "text/event-stream", "request-id": "req_recorded"}
_STOP = re.compile(r'"stop_reason":"[a-z_]+"')


def http_responses(name: str) -> list[httpx2.Response]:
    """The responses of a recorded ``.json`` exchange list, or of one ``.sse`` body."""
    path = FIXTURES / name
    if path.suffix == ".sse":
        return [sse_response(path.read_bytes())]
    responses = []
    for exchange in json.loads(path.read_text()):
        response = exchange["response"]
        body = response["body"]
        headers = {
            k: v for k, v in response["headers"].items() if k.lower() not in ("content-length", "connection")
        }
        if isinstance(body, str):
            responses.append(httpx2.Response(response["status_code"], headers=headers, content=body.encode()))
        else:
            responses.append(httpx2.Response(response["status_code"], headers=headers, json=body))
    return responses


def sse_response(body: bytes) -> httpx2.Response:
    if not body.endswith(b"\n\n"):
        body += b"\n\n"  # the SDK's fixtures omit the final blank line
    return httpx2.Response(200, headers=SSE_HEADERS, content=body)


def client_for(responses: Sequence[httpx2.Response]) -> AsyncAnthropic:
    """An SDK client whose requests get ``responses``, in order, without a socket."""
    queue = deque(responses)

    def answer(request: httpx2.Request) -> httpx2.Response:
        return queue.popleft()

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(answer))
    return AsyncAnthropic(
        api_key="recorded", base_url="http://recorded.test", max_retries=0, http_client=http
    )


async def record(responses: Sequence[httpx2.Response]) -> list[Exchange]:
    """Each response as the SDK transport reads it: its events, and the error it raised."""
    transport = AnthropicTransport(client_for(responses))
    exchanges = []
    try:
        for _ in responses:
            events = []
            try:
                async for event in transport.stream(REQUEST):
                    events.append(event)
            except Exception as error:
                exchanges.append(Exchange(tuple(events), error))
            else:
                exchanges.append(Exchange(tuple(events)))
    finally:
        await transport.close()
    return exchanges


async def recorded(name: str) -> list[Exchange]:
    return await record(http_responses(name))


def with_stop_reason(name: str, stop_reason: str) -> httpx2.Response:
    """A recorded stream whose ``message_delta`` says ``stop_reason`` instead."""
    body = (FIXTURES / name).read_text()
    edited, n = _STOP.subn(f'"stop_reason":"{stop_reason}"', body)
    assert n == 1, f"{name} has {n} stop reasons"
    return sse_response(edited.encode())


def cut_response(body: bytes, before: bytes) -> httpx2.Response:
    """A recorded stream the server drops just before ``before`` (the connection closes with the
    body incomplete, as httpx reports a peer that hung up)."""
    sent = body[: body.index(before)]

    async def chunks() -> AsyncIterator[bytes]:
        yield sent
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete message body")

    return httpx2.Response(200, headers=SSE_HEADERS, content=chunks())
