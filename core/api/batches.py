"""The Message Batches API as the engine sees it: a client protocol, its objects, and a result
turned into the stream events a streamed call yields.

A batch layer's requests go out through a :class:`BatchClient` (the SDK transport is one,
:mod:`core.api.sdk`; the tests have a fake). A succeeded result is replayed as the transport's own
events (:func:`result_events`), so the stream relay publishes its text, searches and citations and
the attempt's accounting folds its usage exactly as for a streamed call; an errored one is raised as
the :class:`~core.api.transport.TransportError` its error status would have been, so the retry rules
are the stream mode's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.api.transport import (
    ApiStatus,
    BlockStarted,
    CallResult,
    Citation,
    Completed,
    Ending,
    MessageDelta,
    MessageStarted,
    OutputDelta,
    Responded,
    SearchCalled,
    SearchResults,
    StreamEvent,
    TextDelta,
    TransportError,
)
from core.usage import TokenUsage

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What the API accepts as a request's ``custom_id``."""

ResultType = Literal["succeeded", "errored", "canceled", "expired"]

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
"""The HTTP status each error type is answered with by the Messages endpoint: an errored result
is retried (or not) as that status would be."""


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A ``MessageBatch`` as far as the engine needs it."""

    id: str
    processing_status: str  # in_progress | canceling | ended
    request_counts: Mapping[str, int] = field(default_factory=dict)
    created_at: float | None = None  # seconds since the epoch
    expires_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One line of a batch's results: ``message`` when it succeeded, ``error`` (the error
    response's body) when it errored."""

    custom_id: str
    type: ResultType
    message: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None


class BatchClient(Protocol):
    """The Batches endpoints (``request`` bodies as a :class:`~core.api.transport.Transport` takes them)."""

    async def create_batch(self, requests: Sequence[tuple[str, Mapping[str, Any]]]) -> BatchStatus:
        """Submit ``(custom_id, request)`` pairs as one batch."""
        ...

    async def retrieve_batch(self, batch_id: str) -> BatchStatus: ...

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        """Every result of an ended batch (in no particular order)."""
        ...

    async def cancel_batch(self, batch_id: str) -> BatchStatus: ...


def result_events(message: Mapping[str, Any], request_id: str | None = None) -> Iterator[StreamEvent]:
    """A succeeded result's message as the events a streamed call of it would have yielded, the
    last one :class:`~core.api.transport.Completed` (its content as the API sent it)."""
    usage = TokenUsage.from_api(dict(message.get("usage") or {}))
    yield Responded(request_id)
    yield MessageStarted(usage)
    content = [dict(block) for block in message.get("content") or ()]
    for block in content:
        kind = str(block.get("type", ""))
        if kind == "web_search_tool_result":
            found = block.get("content")
            tool_use_id = str(block.get("tool_use_id", ""))
            if isinstance(found, list):
                urls = tuple(str(page.get("url", "")) for page in found if isinstance(page, dict))
                yield SearchResults(tool_use_id, urls, None)
            else:
                code = found.get("error_code", "unknown") if isinstance(found, dict) else "unknown"
                yield SearchResults(tool_use_id, (), str(code))
            continue
        yield BlockStarted(kind, block.get("name"))
        if kind == "text":
            yield TextDelta(str(block.get("text", "")))
            for citation in block.get("citations") or ():
                if isinstance(citation, dict) and (url := citation.get("url")):
                    yield Citation(str(url), citation.get("title"))
        elif kind == "thinking":
            yield OutputDelta(str(block.get("thinking", "")))
        elif kind == "server_tool_use" and block.get("name") == "web_search":
            tool_input = block.get("input")
            query = tool_input.get("query", "") if isinstance(tool_input, dict) else ""
            yield SearchCalled(str(block.get("id", "")), str(query))
    stop_reason = message.get("stop_reason")
    yield MessageDelta(usage, stop_reason)
    yield Completed(
        CallResult(
            content=content,
            stop_reason=stop_reason,
            usage=usage,
            request_id=request_id,
            message_id=message.get("id"),
        )
    )


def errored(error: Mapping[str, Any] | None, custom_id: str) -> TransportError:
    """An errored result as the error its status would have raised (retried by the same rules)."""
    body = error or {}
    detail = body.get("error") if isinstance(body.get("error"), dict) else body
    assert isinstance(detail, Mapping)
    error_type = str(detail.get("type", "api_error"))
    message = str(detail.get("message", "")) or error_type
    status = ApiStatus(
        status_code=_ERROR_STATUS.get(error_type, 500),
        message=message,
        error_type=error_type,
        request_id=body.get("request_id") if isinstance(body.get("request_id"), str) else None,
    )
    return TransportError(Ending.STATUS, f"batch request {custom_id} errored: {message}", status)
