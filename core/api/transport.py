"""The seam between the turn engine and whatever carries its requests to the model.

A :class:`Transport` sends one Messages API request and yields what happened, as the product's
own small events, ending with :class:`Completed` (the call's :class:`CallResult`); a failure is
raised. The engine never sees the SDK: the SDK streaming transport (:mod:`core.api.sdk`) is one
implementation, the replay transport of the tests (:mod:`core.api.replay`) another, and a batch
transport could be a third.

The events are what the engine needs and no more, one per wire event that matters (a ``ping`` or
a ``signature_delta`` yields nothing): attempt accounting folds them
(:meth:`core.api.attempt.AttemptProgress.observe`), the stream relay publishes them
(:mod:`core.api.streaming`). They are slotted and built once per wire event, so the per-event
cost stays what the SDK's own typed events cost.

A failure is raised as the transport's own exception; :func:`core.api.failure.failure_of` reads
how the attempt ended from it (an SDK transport's errors, or :class:`TransportError` from a
transport that is not the SDK's).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import ResearchOrchestratorError
from core.usage import TokenUsage


@dataclass(slots=True)
class CallResult:
    """A completed call: the assistant's content exactly as the API sent it, and its usage."""

    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: TokenUsage
    request_id: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None  # the response's ``id`` (what a message thread continues from)


# --- stream events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Responded:
    """The API answered 200 and its stream began: from here a failure broke a stream that had begun."""

    request_id: str | None


@dataclass(frozen=True, slots=True)
class MessageStarted:
    """``message_start``: the usage of the first sampling (its input, as billed)."""

    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class BlockStarted:
    """A content block began (any but search results, see :class:`SearchResults`)."""

    type: str
    name: str | None = None  # a tool's name (``web_search`` for a search the model issued)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """Output that streams as no text for the reader: a tool's input JSON, thinking."""

    text: str


@dataclass(frozen=True, slots=True)
class Citation:
    url: str
    title: str | None


@dataclass(frozen=True, slots=True)
class SearchCalled:
    """A web search the model issued, once its input is complete (``content_block_stop``)."""

    tool_use_id: str
    query: str


@dataclass(frozen=True, slots=True)
class SearchResults:
    """A ``web_search_tool_result`` block (it arrives whole in its ``content_block_start``)."""

    tool_use_id: str
    urls: tuple[str, ...]  # the pages' URLs, in order (none for an error)
    error_code: str | None  # set when the search failed (the API still answers 200)


@dataclass(frozen=True, slots=True)
class MessageDelta:
    """``message_delta``: the attempt's whole usage so far (cumulative) and its stop reason."""

    usage: TokenUsage
    stop_reason: str | None


@dataclass(slots=True)
class BatchHold:
    """A batch transport's first event: the request waits in a Message Batch (``custom_id`` in
    ``batch_id`` once submitted). ``deferred``: the attempt was stopped and nothing is charged for
    it now: it was never sent, or its batch runs on and the resume collects and settles its result."""

    custom_id: str | None = None
    batch_id: str | None = None
    deferred: bool = False


@dataclass(frozen=True, slots=True)
class Completed:
    """The last event of a call that completed."""

    result: CallResult


StreamEvent = (
    Responded
    | MessageStarted
    | BlockStarted
    | TextDelta
    | OutputDelta
    | Citation
    | SearchCalled
    | SearchResults
    | MessageDelta
    | Completed
    | BatchHold
)


# --- failures -------------------------------------------------------------------------------------


MESSAGE_THREADS_BETA = "message-threads-2026-08-12"
"""The ``anthropic-beta`` a request with a ``thread`` field is sent with."""


class Ending(enum.Enum):
    """How an attempt's failure ended it, whatever wraps the error."""

    STATUS = "status"  # the API answered with an error: an HTTP status, or ``event: error`` in a stream
    NOT_SENT = "not_sent"  # the request never (wholly) left this machine
    TIMED_OUT = "timed_out"  # we stopped waiting for an answer that may still be coming
    BROKEN = "broken"  # the connection failed or was ended by the other side after the request left
    OTHER_API = "other_api"  # an API error with none of the above inside (a response it cannot read)


@dataclass(frozen=True, slots=True)
class ApiStatus:
    """What an error status said (an HTTP status, or ``event: error`` inside a 200 stream)."""

    status_code: int
    message: str
    error_type: str | None = None  # ``error.type`` of the body
    error_code: str | None = None  # ``error.details.error_code`` of the body
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class StreamIncomplete(ResearchOrchestratorError):
    """A stream that ended cleanly but without a stop reason: retried like one that broke off."""


class TransportError(ResearchOrchestratorError):
    """An attempt's failure as a transport that is not the SDK's says it: how it ended, and the
    status when the API answered with one."""

    def __init__(self, ending: Ending, message: str, status: ApiStatus | None = None) -> None:
        super().__init__(message)
        self.ending = ending
        self.status = status


# --- the protocol ---------------------------------------------------------------------------------


class Transport(Protocol):
    """Carries Messages API requests (``request`` is the JSON body's fields, without ``stream``; a
    ``thread`` field is sent with its beta, ``MESSAGE_THREADS_BETA``)."""

    def stream(self, request: Mapping[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        """Send ``request`` streamed; yield its events, the last one :class:`Completed`. A failure
        is raised (an ending without a stop reason as :class:`StreamIncomplete`). Close the
        iterator (``contextlib.aclosing``) when leaving it early."""
        ...

    async def create(self, request: Mapping[str, Any]) -> CallResult:
        """Send ``request`` unstreamed (short calls: a compaction's summary)."""
        ...

    async def count_tokens(self, request: Mapping[str, Any]) -> int:
        """The input tokens of ``request`` (``model``, ``system``, ``messages``) as the API counts them."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
