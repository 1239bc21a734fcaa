"""The SDK streaming transport: Messages API calls through ``anthropic.AsyncAnthropic``.

This module and its error mapping (:mod:`core.api.failure`) are the only ones in ``core`` that
import the SDK. The composition root opens the transport (:func:`open_sdk_transport`, the SDK's own
retries off: every retry is ours and visible) and hands it to the engine as a
:class:`~core.api.transport.Transport`.

The SDK sends the request and raises an error status as its own error; the body of a stream is
read here, each event parsed once as JSON and turned into at most one of the product's events,
without the SDK's typed objects (``construct_type`` per event) or its ``MessageStream`` helper
(a snapshot of the whole message and an event of its own per delta). The content is accumulated
once, the way the helper accumulates it, and kept exactly as the API sent it, because a
``pause_turn`` continuation must resend it unchanged (``tests/core/api/test_sdk.py`` holds it to
the helper's result).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
from anthropic import APIStatusError, AsyncAnthropic, DefaultAsyncHttpxClient
from anthropic.types.messages import MessageBatch

from core.api.batches import BatchResult, BatchStatus
from core.api.network import system_trust_context
from core.api.transport import (
    MESSAGE_THREADS_BETA,
    BlockStarted,
    CallResult,
    Citation,
    Completed,
    MessageDelta,
    MessageStarted,
    OutputDelta,
    Responded,
    SearchCalled,
    SearchResults,
    StreamEvent,
    StreamIncomplete,
    TextDelta,
)
from core.config.model import Trust
from core.usage import TokenUsage

_TRACKS_TOOL_INPUT = frozenset({"tool_use", "server_tool_use"})  # as the SDK's stream helper


def open_sdk_transport(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    trust: Trust = "default",
    socket_path: Path | None = None,
    direct: bool = False,
) -> AnthropicTransport:
    """The SDK client, with its own retries off; ``None`` takes the SDK's environment defaults.

    How it connects is :func:`http_client`'s: ``trust``, a simulator's ``socket_path``, ``direct``.
    """
    client = http_client(trust=trust, socket_path=socket_path, direct=direct)
    return AnthropicTransport(
        AsyncAnthropic(base_url=base_url, api_key=api_key, max_retries=0, http_client=client)
    )


def http_client(
    *, trust: Trust = "default", socket_path: Path | None = None, direct: bool = False
) -> httpx2.AsyncClient | None:
    """The SDK's HTTP client as the run needs it, or None for the SDK's own (proxies and
    ``SSL_CERT_FILE`` from the environment, the system's certificates).

    ``socket_path``: a private simulator's Unix socket; ``direct``: a simulator on loopback. Neither
    goes through a proxy, whatever the environment says. ``trust="system"``: the operating system's
    trust store (:func:`core.api.network.system_trust_context`).
    """
    # A simulator speaks plain HTTP: no TLS context is built for it (loading the CA bundle cost
    # each run 25-35 ms of CPU before its first call).
    if socket_path is not None:
        transport = httpx2.AsyncHTTPTransport(uds=str(socket_path), verify=False)
        return DefaultAsyncHttpxClient(transport=transport)
    if direct:
        return DefaultAsyncHttpxClient(trust_env=False, verify=False)
    if trust == "system":
        return DefaultAsyncHttpxClient(verify=system_trust_context())
    return None


class _Block:
    """One content block being streamed: its start as sent, and the deltas that extend it."""

    __slots__ = ("citations", "data", "is_text", "json", "parts", "signature")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.is_text = data.get("type") == "text"
        self.parts: list[str] = []  # text or thinking
        self.json: list[str] = []  # a tool's input
        self.citations: list[dict[str, Any]] = []
        self.signature: str | None = None

    def finish(self) -> dict[str, Any]:
        """The block as the SDK's helper leaves it (only what applies to the block's type)."""
        data, kind = self.data, self.data.get("type")
        if kind == "text":
            if self.parts:
                data["text"] = data.get("text", "") + "".join(self.parts)
            if self.citations:
                data["citations"] = [*(data.get("citations") or ()), *self.citations]
        elif kind == "thinking":
            if self.parts:
                data["thinking"] = data.get("thinking", "") + "".join(self.parts)
            if self.signature is not None:
                data["signature"] = self.signature
        elif kind in _TRACKS_TOOL_INPUT and self.json:
            data["input"] = json.loads("".join(self.json))
        self.parts, self.json, self.citations = [], [], []
        return data


class AnthropicTransport:
    """A :class:`~core.api.transport.Transport` over one ``AsyncAnthropic`` client."""

    def __init__(self, client: AsyncAnthropic) -> None:
        self.client = client

    async def stream(self, request: Mapping[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        """The request streamed: the SDK sends it (and raises an error status as its own error);
        the body's events are read here, one JSON parse each (:func:`_read_events`)."""
        answer = self.client.messages.with_streaming_response.create(**_sdk_arguments(request), stream=True)
        async with answer as response:
            http = response.http_response
            request_id = http.headers.get("request-id")
            yield Responded(request_id)
            blocks: list[_Block] = []
            message_id: str | None = None
            usage: dict[str, Any] | None = None  # message_start's, updated as message_delta says
            stop_reason: str | None = None
            async for events in _read_events(http):
                for event in events:
                    kind = event["type"]
                    if kind == "content_block_delta":  # most events: the hot path comes first
                        delta = event["delta"]
                        block = blocks[event["index"]]
                        kind = delta["type"]
                        if kind == "text_delta":
                            text = delta["text"]
                            block.parts.append(text)
                            yield TextDelta(text) if block.is_text else OutputDelta(text)
                        elif kind == "input_json_delta":
                            block.json.append(delta["partial_json"])
                            yield OutputDelta(delta["partial_json"])
                        elif kind == "thinking_delta":
                            block.parts.append(delta["thinking"])
                            yield OutputDelta(delta["thinking"])
                        elif kind == "citations_delta":
                            citation = delta["citation"]
                            block.citations.append(citation)
                            if url := citation.get("url"):
                                yield Citation(url, citation.get("title"))
                        elif kind == "signature_delta":
                            block.signature = delta["signature"]
                    elif kind == "content_block_start":
                        data = event["content_block"]
                        blocks.append(_Block(data))
                        yield _started(data)
                    elif kind == "content_block_stop":
                        data = blocks[event["index"]].finish()
                        if data.get("type") == "server_tool_use" and data.get("name") == "web_search":
                            query = (
                                data["input"].get("query", "") if isinstance(data.get("input"), dict) else ""
                            )
                            yield SearchCalled(str(data.get("id", "")), str(query))
                    elif kind == "message_delta":
                        if usage is None:
                            raise StreamIncomplete("message_delta before message_start")
                        stop_reason = event["delta"].get("stop_reason")
                        _update_usage(usage, event.get("usage") or {})
                        yield MessageDelta(TokenUsage.from_api(usage), stop_reason)
                    elif kind == "message_start":
                        message = event["message"]
                        message_id = message.get("id")
                        usage = dict(message.get("usage") or {})
                        blocks = [_Block(block) for block in message.get("content") or ()]
                        yield MessageStarted(TokenUsage.from_api(usage))
                    elif kind == "error":
                        raise APIStatusError(str(event), response=http, body=event)
            if stop_reason is None or usage is None:
                raise StreamIncomplete("the stream ended without message_stop")
            result = CallResult(
                content=[block.finish() for block in blocks],
                stop_reason=stop_reason,
                usage=TokenUsage.from_api(usage),
                request_id=request_id,
                headers=dict(http.headers),
                message_id=message_id,
            )
            yield Completed(result)

    async def create(self, request: Mapping[str, Any]) -> CallResult:
        message = await self.client.messages.create(**_sdk_arguments(request))
        return CallResult(
            content=[block.to_dict(mode="json") for block in message.content],
            stop_reason=message.stop_reason,
            usage=TokenUsage.from_api(message.usage),
            request_id=getattr(message, "_request_id", None),
            message_id=message.id,
        )

    async def count_tokens(self, request: Mapping[str, Any]) -> int:
        counted = await self.client.messages.count_tokens(**request)
        return counted.input_tokens

    async def close(self) -> None:
        await self.client.close()

    # --- the Batches endpoints (core.api.batches.BatchClient) ------------------------------------

    async def create_batch(self, requests: Sequence[tuple[str, Mapping[str, Any]]]) -> BatchStatus:
        body = [{"custom_id": custom_id, "params": dict(params)} for custom_id, params in requests]
        return _batch_status(await self.client.messages.batches.create(requests=body))  # type: ignore[arg-type]

    async def retrieve_batch(self, batch_id: str) -> BatchStatus:
        return _batch_status(await self.client.messages.batches.retrieve(batch_id))

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        lines = await self.client.messages.batches.results(batch_id)
        results: list[BatchResult] = []
        async for line in lines:
            result: dict[str, Any] = line.result.to_dict(mode="json")
            results.append(
                BatchResult(
                    custom_id=line.custom_id,
                    type=line.result.type,
                    message=result.get("message"),
                    error=result.get("error"),
                )
            )
        return results

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        return _batch_status(await self.client.messages.batches.cancel(batch_id))


def _batch_status(batch: MessageBatch) -> BatchStatus:
    counts = batch.request_counts
    names = ("processing", "succeeded", "errored", "canceled", "expired")
    return BatchStatus(
        id=batch.id,
        processing_status=batch.processing_status,
        request_counts={name: int(getattr(counts, name)) for name in names},
        created_at=batch.created_at.timestamp() if batch.created_at else None,
        expires_at=batch.expires_at.timestamp() if batch.expires_at else None,
    )


def _sdk_arguments(request: Mapping[str, Any]) -> dict[str, Any]:
    """``request`` as the SDK's ``messages.create`` takes it: a ``thread`` goes in the body with its beta
    header, which every supported SDK sends (2.12 has no ``thread`` parameter)."""
    if "thread" not in request:
        return dict(request)
    arguments = {k: v for k, v in request.items() if k != "thread"}
    arguments["extra_body"] = {"thread": request["thread"]}
    arguments["extra_headers"] = {"anthropic-beta": MESSAGE_THREADS_BETA}
    return arguments


def _started(data: dict[str, Any]) -> StreamEvent:
    """A block's start: search results (a list of pages, or one error object, still HTTP 200)."""
    kind = str(data.get("type", ""))
    if kind != "web_search_tool_result":
        return BlockStarted(kind, data.get("name"))
    content = data.get("content")
    if isinstance(content, list):
        urls = tuple(str(page.get("url", "")) for page in content if isinstance(page, dict))
        return SearchResults(str(data.get("tool_use_id", "")), urls, None)
    error = str(content.get("error_code", "unknown")) if isinstance(content, dict) else "unknown"
    return SearchResults(str(data.get("tool_use_id", "")), (), error)


def _search_called(block: dict[str, Any]) -> SearchCalled:
    tool_input = block.get("input")
    query = tool_input.get("query", "") if isinstance(tool_input, dict) else ""
    return SearchCalled(str(block.get("id", "")), str(query))


def _update_usage(usage: dict[str, Any], delta: dict[str, Any]) -> None:
    """``message_delta``'s counts are cumulative: they overwrite, and an absent one keeps
    ``message_start``'s (as the SDK's stream helper accumulates them)."""
    usage["output_tokens"] = delta.get("output_tokens")
    for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "server_tool_use"):
        value = delta.get(name)
        if value is not None:
            usage[name] = value


async def _read_events(http: httpx2.Response) -> AsyncIterator[list[dict[str, Any]]]:
    """The body's server-sent events, as the JSON objects of their ``data``, a network read at a time.

    Events are told apart by their JSON's ``type`` (the API repeats it in the ``event:`` line), so
    only ``data:`` lines are read; a ``ping`` is dropped here. Lines may end with CR LF.
    """
    pending = b""
    async for chunk in http.aiter_bytes():
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        frames = (pending + chunk).split(b"\n\n")
        pending = frames.pop()
        events = []
        for frame in frames:
            data = _data_of(frame)
            if data is not None:
                event = _json(data)
                if event.get("type") != "ping":
                    events.append(event)
        if events:
            yield events
    data = _data_of(pending) if pending.strip() else None
    if data is not None:  # a last event without its blank line
        yield [_json(data)]


def _data_of(frame: bytes) -> bytes | None:
    """The ``data`` of one event (its ``data:`` lines joined), or None when it has none."""
    if frame.startswith(b"event:") and frame.count(b"\n") == 1:  # the usual shape: one data line
        line = frame[frame.index(b"\n") + 1 :]
        if line.startswith(b"data:"):
            return line[6:] if line[5:6] == b" " else line[5:]
    lines = [line for line in frame.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[6:] if line[5:6] == b" " else line[5:] for line in lines)


_raw_decode = json.JSONDecoder().raw_decode


def _json(data: bytes) -> Any:
    """``json.loads`` of an event's data, for the usual shape (an object, then perhaps the padding
    the API puts before its closing brace) without its encoding detection and whitespace scans."""
    text = data.decode("utf-8")
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading whitespace, or not JSON: its own error says where
    if end != len(text) and not text[end:].isspace():
        return json.loads(text)  # trailing garbage: json.loads raises saying where
    return value
