"""One streamed call through a transport: its events folded into the attempt's progress and
relayed to the bus (text coalesced, searches, results, citations) as they arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from core import correlation
from core.api.attempt import AttemptProgress
from core.api.transport import (
    CallResult,
    Citation,
    Completed,
    Responded,
    SearchCalled,
    SearchResults,
    StreamIncomplete,
    TextDelta,
    Transport,
)
from core.events import (
    CitationReceived,
    Event,
    EventBus,
    SearchIssued,
    SearchResultsReceived,
    TextStreamed,
)

__all__ = ["AgentContext", "CallResult", "stream_call"]

TEXT_FLUSH_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class AgentContext:
    """Who is speaking: stamped on every event an agent's calls produce.

    The agent's events go to ``sink`` (its handle, which moves the agent's row with them and
    publishes them), or straight to ``bus`` without one.
    """

    bus: EventBus
    run_id: str
    agent_id: str
    layer: int
    sink: Callable[[Event], None] | None = None

    def publish(self, event_type: type[Event], *, turn: int | None = None, **fields: Any) -> None:
        event = event_type(run_id=self.run_id, agent_id=self.agent_id, layer=self.layer, turn=turn, **fields)
        (self.sink or self.bus.publish)(event)


class _TextCoalescer:
    """Batches text deltas so subscribers see a few events per second, not one per token."""

    def __init__(self, context: AgentContext, turn: int) -> None:
        self._context = context
        self._turn = turn
        self.request_id: str | None = None
        self._parts: list[str] = []
        self._last_flush = time.monotonic()

    def add(self, text: str) -> None:
        self._parts.append(text)
        now = time.monotonic()
        if now - self._last_flush >= TEXT_FLUSH_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._context.publish(TextStreamed, turn=self._turn, request_id=self.request_id, text=text)
        self._last_flush = now if now is not None else time.monotonic()


async def stream_call(
    transport: Transport,
    params: Mapping[str, Any],
    context: AgentContext,
    turn: int,
    progress: AttemptProgress | None = None,
) -> CallResult:
    """Send one streamed call, publishing text, searches, results and citations as they arrive.

    ``progress`` folds every event (the bound of a failed attempt's bill is read from it).
    """
    progress = progress or AttemptProgress()
    progress.sent = True
    text = _TextCoalescer(context, turn)
    async with aclosing(transport.stream(params)) as events:
        async for event in events:
            progress.observe(event)
            match event:
                case TextDelta(text=fragment):
                    text.add(fragment)
                case SearchCalled(tool_use_id=tool_use_id, query=query):
                    text.flush()
                    context.publish(
                        SearchIssued,
                        turn=turn,
                        request_id=text.request_id,
                        query=query,
                        tool_use_id=tool_use_id,
                    )
                case SearchResults():
                    text.flush()
                    _publish_results(context, turn, text.request_id, event)
                case Citation(url=url, title=title):
                    context.publish(
                        CitationReceived, turn=turn, request_id=text.request_id, url=url, title=title
                    )
                case Responded(request_id=request_id):
                    text.request_id = request_id
                    correlation.request_id.set(request_id)  # this agent's log records name it
                case Completed(result=result):
                    text.flush()
                    return result
                case _:
                    pass  # accounting only (usage, blocks, tool input)
    raise StreamIncomplete("the stream ended without an outcome")


def _publish_results(
    context: AgentContext, turn: int, request_id: str | None, results: SearchResults
) -> None:
    hosts = (urlparse(url).hostname for url in results.urls)
    context.publish(
        SearchResultsReceived,
        turn=turn,
        request_id=request_id,
        tool_use_id=results.tool_use_id,
        count=len(results.urls),
        domains=tuple(dict.fromkeys(host for host in hosts if host)),
        error_code=results.error_code,
    )
