"""One streamed Messages API call: events out as it streams, the assistant's content at the end.

The content is kept exactly as the API sent it (``to_dict`` of the SDK's own types with unset
fields left out), because a ``pause_turn`` continuation must resend it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from anthropic import AsyncAnthropic
from anthropic.lib.streaming import ParsedContentBlockStopEvent, TextEvent
from anthropic.lib.streaming._types import CitationEvent  # not re-exported by the package
from anthropic.types import (
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    ServerToolUseBlock,
    WebSearchToolResultBlock,
)

from core.api.attempt import AttemptProgress
from core.api.retry import StreamIncomplete
from core.api.usage import TokenUsage
from core.events import (
    CitationReceived,
    Event,
    EventBus,
    SearchIssued,
    SearchResultsReceived,
    TextStreamed,
)

TEXT_FLUSH_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Who is speaking: stamped on every event an agent's calls produce."""

    bus: EventBus
    run_id: str
    agent_id: str
    layer: int

    def publish(self, event_type: type[Event], *, turn: int | None = None, **fields: Any) -> None:
        self.bus.publish(
            event_type(run_id=self.run_id, agent_id=self.agent_id, layer=self.layer, turn=turn, **fields)
        )


@dataclass(slots=True)
class CallResult:
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: TokenUsage
    request_id: str | None
    headers: Mapping[str, str] = field(default_factory=dict)


class _TextCoalescer:
    """Batches text deltas so subscribers see a few events per second, not one per token."""

    def __init__(
        self, context: AgentContext, turn: int, request_id: str | None, progress: AttemptProgress
    ) -> None:
        self._context = context
        self._turn = turn
        self._request_id = request_id
        self._parts: list[str] = []
        self._last_flush = time.monotonic()
        self._progress = progress

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._progress.chars += len(text)
        now = time.monotonic()
        if now - self._last_flush >= TEXT_FLUSH_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._context.publish(TextStreamed, turn=self._turn, request_id=self._request_id, text=text)
        self._last_flush = now if now is not None else time.monotonic()


async def stream_call(
    client: AsyncAnthropic,
    params: Mapping[str, Any],
    context: AgentContext,
    turn: int,
    progress: AttemptProgress | None = None,
) -> CallResult:
    """Stream one call, publishing text, searches, results and citations as they arrive.

    ``progress`` records what arrived (the bound of a failed attempt's bill is read from it).
    """
    progress = progress or AttemptProgress()
    progress.sent = True
    async with client.messages.stream(**params) as stream:
        request_id = progress.request_id = stream.request_id
        text = _TextCoalescer(context, turn, request_id, progress)
        async for event in stream:
            progress.observe(event)
            if isinstance(event, RawMessageDeltaEvent):
                progress.finished(TokenUsage.from_api(stream.current_message_snapshot.usage))
            elif isinstance(event, TextEvent):
                text.add(event.text)
            elif isinstance(event, ParsedContentBlockStopEvent):
                block = event.content_block
                if isinstance(block, ServerToolUseBlock) and block.name == "web_search":
                    text.flush()
                    query = block.input.get("query", "") if isinstance(block.input, dict) else ""
                    context.publish(
                        SearchIssued, turn=turn, request_id=request_id, query=str(query), tool_use_id=block.id
                    )
            elif isinstance(event, RawContentBlockStartEvent):
                if isinstance(event.content_block, WebSearchToolResultBlock):
                    text.flush()
                    _publish_results(context, turn, request_id, event.content_block.to_dict(mode="json"))
            elif isinstance(event, CitationEvent):
                url = getattr(event.citation, "url", None)
                if url:
                    title = getattr(event.citation, "title", None)
                    context.publish(CitationReceived, turn=turn, request_id=request_id, url=url, title=title)
        text.flush()
        message = await stream.get_final_message()
        if message.stop_reason is None:
            raise StreamIncomplete("the stream ended without message_stop")
        return CallResult(
            content=[block.to_dict(mode="json") for block in message.content],
            stop_reason=message.stop_reason,
            usage=TokenUsage.from_api(message.usage),
            request_id=request_id,
            headers=dict(stream.response.headers),
        )


def _publish_results(context: AgentContext, turn: int, request_id: str | None, block: dict[str, Any]) -> None:
    """Results are a list of pages, or one error object (still HTTP 200)."""
    content = block.get("content")
    pages = content if isinstance(content, list) else []
    hosts = (urlparse(str(page.get("url", ""))).hostname for page in pages)
    context.publish(
        SearchResultsReceived,
        turn=turn,
        request_id=request_id,
        tool_use_id=str(block.get("tool_use_id", "")),
        count=len(pages),
        domains=tuple(dict.fromkeys(host for host in hosts if host)),
        error_code=str(content.get("error_code", "unknown")) if isinstance(content, dict) else None,
    )
