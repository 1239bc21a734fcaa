"""The SDK transport reads the SDK's raw events and accumulates the content itself: it must leave
exactly what the SDK's own ``MessageStream`` helper leaves (a ``pause_turn`` continuation resends
the content unchanged), on real recorded streams and on the simulator's (searches, results,
citations, pauses), and its events must say what the stream held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from core.api.attempt import fold
from core.api.sdk import AnthropicTransport
from core.api.transport import (
    BlockStarted,
    CallResult,
    Citation,
    Completed,
    MessageStarted,
    Responded,
    SearchCalled,
    SearchResults,
    StreamEvent,
    StreamIncomplete,
    TextDelta,
)
from core.simulator import Simulator, SimulatorSettings
from core.usage import TokenUsage
from tests.core.api.recorded import REQUEST, client_for, http_responses, sse_response

SEARCH_REQUEST: dict[str, Any] = {
    **REQUEST,
    "max_tokens": 2048,
    "tools": [
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    ],  # over the loop limit: pauses
}


async def through_transport(response: httpx2.Response) -> tuple[CallResult, list[StreamEvent]]:
    transport = AnthropicTransport(client_for([response]))
    events = [event async for event in transport.stream(REQUEST)]
    await transport.close()
    completed = events[-1]
    assert isinstance(completed, Completed)
    return completed.result, events


async def through_message_stream(response: httpx2.Response) -> tuple[list[dict[str, Any]], Any, TokenUsage]:
    client = client_for([response])
    async with client.messages.stream(**REQUEST) as stream:
        message = await stream.get_final_message()
    await client.close()
    return (
        [block.to_dict(mode="json") for block in message.content],
        message.stop_reason,
        (TokenUsage.from_api(message.usage)),
    )


async def assert_same_as_the_sdk_helper(body: bytes) -> tuple[CallResult, list[StreamEvent]]:
    result, events = await through_transport(sse_response(body))
    content, stop_reason, usage = await through_message_stream(sse_response(body))
    assert result.content == content
    assert (result.stop_reason, result.usage) == (stop_reason, usage)
    return result, events


@pytest.mark.parametrize(
    ("name", "index"),
    [("two-429s-then-stream.json", 2), ("tool-use-stream.json", 0), ("tool-use-stream.json", 1)],
)
async def test_recorded_streams_give_the_sdk_helpers_content(name: str, index: int) -> None:
    body = http_responses(name)[index].content
    result, events = await assert_same_as_the_sdk_helper(body)
    assert events[0] == Responded("req_recorded") and result.request_id == "req_recorded"
    assert isinstance(events[1], MessageStarted) and events[1].usage.input_tokens > 0
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "".join(b.get("text", "") for b in result.content if b["type"] == "text")


async def test_a_recorded_search_stream_says_its_search_and_results() -> None:
    body = (http_responses("web-search-stream-synthetic.sse")[0]).content
    result, events = await assert_same_as_the_sdk_helper(body)
    [called] = [e for e in events if isinstance(e, SearchCalled)]
    [use] = [b for b in result.content if b["type"] == "server_tool_use"]
    assert called == SearchCalled(use["id"], use["input"]["query"]) and called.query
    [results] = [e for e in events if isinstance(e, SearchResults)]
    [block] = [b for b in result.content if b["type"] == "web_search_tool_result"]
    assert results.urls == tuple(page["url"] for page in block["content"]) and results.error_code is None
    assert result.stop_reason == "refusal"
    progress = fold(events)
    assert (progress.searches, progress.results, progress.blocks) == (1, 1, len(result.content))


async def simulator_bodies(seed: int, count: int) -> list[bytes]:
    """Raw SSE bodies of the simulator (pauses, searches, results, citations), read without the SDK."""
    settings = SimulatorSettings(seed=seed, pause_turn_probability=0.5)
    headers = {"x-api-key": "sim", "anthropic-version": "2023-06-01"}
    async with Simulator(settings) as sim, httpx2.AsyncClient(base_url=sim.base_url, timeout=30) as http:
        bodies = []
        for n in range(count):
            question = [{"role": "user", "content": f"Research sodium-ion batteries, angle {n}"}]
            request = {**SEARCH_REQUEST, "messages": question, "stream": True}
            response = await http.post("/v1/messages", json=request, headers=headers)
            assert response.status_code == 200, response.text
            bodies.append(response.content)
    return bodies


async def test_simulated_streams_give_the_sdk_helpers_content() -> None:
    stop_reasons, citations = set(), 0
    for body in await simulator_bodies(seed=5, count=12):
        result, events = await assert_same_as_the_sdk_helper(body)
        stop_reasons.add(result.stop_reason)
        cited = [e for e in events if isinstance(e, Citation)]
        in_content = [c for b in result.content if b["type"] == "text" for c in b.get("citations") or ()]
        assert [(c.url, c.title) for c in cited] == [(c["url"], c.get("title")) for c in in_content]
        citations += len(cited)
        progress = fold(events)
        assert progress.final_usage == result.usage and progress.blocks == len(result.content)
        issued = sum(1 for b in result.content if b["type"] == "server_tool_use")
        assert progress.searches == issued == len([e for e in events if isinstance(e, SearchCalled)])
        starts = [e for e in events if isinstance(e, BlockStarted | SearchResults)]
        kinds = [e.type if isinstance(e, BlockStarted) else "web_search_tool_result" for e in starts]
        assert kinds == [b["type"] for b in result.content]
    assert {"pause_turn", "end_turn"} <= stop_reasons and citations > 0


def chunked(body: bytes, size: int) -> httpx2.Response:
    """``body`` as the network may deliver it: ``size`` bytes a read."""

    async def reads() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=reads())


@pytest.mark.parametrize("size", [1, 7, 100, 4096])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
async def test_events_split_across_reads_or_ending_in_cr_lf_read_the_same(size: int, newline: bytes) -> None:
    body = http_responses("web-search-stream-synthetic.sse")[0].content
    whole, whole_events = await through_transport(sse_response(body))
    result, events = await through_transport(chunked(body.replace(b"\n", newline), size))
    assert result.content == whole.content and result.usage == whole.usage
    assert events[1:-1] == whole_events[1:-1]  # all but the headers: the request id, the result


async def test_comments_multi_line_data_and_a_last_event_without_its_blank_line() -> None:
    body = http_responses("two-429s-then-stream.json")[2].content
    start = body.index(b"event: content_block_start")
    # A comment line and an event whose JSON is split over two data lines (joined with a newline).
    reshaped = (
        body[:start]
        + b": keep-alive\n\n"
        + body[start:].replace(
            b'data: {"type":"content_block_start",', b'data: {"type":"content_block_start",\ndata: ', 1
        )
    )
    result, _ = await through_transport(sse_response(reshaped.rstrip(b"\n")))
    whole, _ = await through_transport(sse_response(body))
    assert result.content == whole.content and result.stop_reason == "end_turn"


async def test_a_stream_without_a_stop_reason_is_incomplete() -> None:
    body = http_responses("two-429s-then-stream.json")[2].content
    cut = body[: body.index(b"event: message_delta")]
    transport = AnthropicTransport(client_for([sse_response(cut)]))
    events: list[StreamEvent] = []
    with pytest.raises(StreamIncomplete):
        async for event in transport.stream(REQUEST):
            events.append(event)
    await transport.close()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "[12345,67890]"


async def test_an_error_status_is_raised_as_the_sdk_raises_it() -> None:
    transport = AnthropicTransport(client_for(http_responses("two-429s-then-stream.json")[:1]))
    with pytest.raises(anthropic.RateLimitError):
        async for _ in transport.stream(REQUEST):
            pass
    await transport.close()


async def test_create_and_count_tokens_go_through_the_sdk() -> None:
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
        "content": [{"type": "text", "text": "Notes."}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }  # fmt: skip
    answers = [httpx2.Response(200, json=message), httpx2.Response(200, json={"input_tokens": 4321})]
    transport = AnthropicTransport(client_for(answers))
    result = await transport.create(REQUEST)
    assert (result.content, result.stop_reason) == ([{"type": "text", "text": "Notes."}], "end_turn")
    assert result.usage == TokenUsage(input_tokens=12, output_tokens=3)
    assert await transport.count_tokens({"model": "claude-sonnet-5", "messages": REQUEST["messages"]}) == 4321
    await transport.close()


async def test_a_thread_goes_in_the_body_with_its_beta_and_the_response_id_comes_back() -> None:
    """Through ``extra_body`` and the beta header, so every supported SDK sends it (2.12 has no
    ``thread`` parameter)."""
    async with Simulator(SimulatorSettings(seed=3, pause_turn_probability=0.0), record_bodies=True) as sim:
        transport = AnthropicTransport(
            anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0)
        )
        first = {**REQUEST, "thread": {"type": "create"}}
        created = [e async for e in transport.stream(first)][-1]
        assert isinstance(created, Completed) and created.result.message_id
        continued = await transport.create(
            {
                "model": REQUEST["model"],
                "max_tokens": 256,
                "messages": [{"role": "user", "content": "And more?"}],
                "thread": {"type": "continue", "previous_message_id": created.result.message_id},
            }
        )
        assert continued.message_id and continued.message_id != created.result.message_id
        assert [r.thread for r in sim.stats.recent] == ["create", "continue"]
        assert sim.stats.bodies[1]["thread"]["previous_message_id"] == created.result.message_id
        await transport.close()
