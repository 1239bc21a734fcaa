"""What one API attempt received before it ended: the facts a failed attempt's charge is bounded from.

An attempt that fails may still have been billed (the API bills what it sampled and the searches
it ran, whether or not the stream reached us). :class:`AttemptProgress` records, as events arrive,
everything the bound needs; :func:`outcome_of` says, from how the attempt ended, what the API may
have done with it. The dollars are worked out by :mod:`core.budget.charges`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

from core.api.retry import StreamIncomplete
from core.api.usage import TokenUsage

# Transport failures that happen before the request is fully sent: the API never ran it.
_NOT_SENT = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.WriteError,
    httpx2.WriteTimeout,
    httpx2.UnsupportedProtocol,  # a base URL the client cannot even address
    httpx2.InvalidURL,
    httpx2.LocalProtocolError,  # the request could not be formed
)


class Outcome(enum.Enum):
    """What the API may have done with a failed attempt, as far as the client can tell."""

    NOT_RUN = "not_run"  # never reached it, or it answered with an error status: nothing billed
    STOPPED = "stopped"  # the server ended the stream (error event, dropped, cut short) mid-answer
    UNKNOWN = "unknown"  # it may still be running: we stopped listening (cancelled, timed out)


@dataclass(slots=True)
class AttemptProgress:
    """What one attempt has received so far; read after it fails to bound what it was billed."""

    chars: int = 0  # text characters streamed (what a retry abandons, for the panes)
    sent: bool = False  # the request was handed to the HTTP client
    request_id: str | None = None
    start_usage: TokenUsage | None = None  # ``message_start``'s usage: the first sampling's input
    final_usage: TokenUsage | None = None  # cumulative usage once ``message_delta`` arrived
    output_bytes: int = 0  # UTF-8 bytes of text, thinking and tool-input JSON streamed
    blocks: int = 0  # content blocks started
    searches: int = 0  # web searches the model issued (``server_tool_use`` blocks)
    search_errors: int = 0  # results that were errors (not billed)
    results: int = 0  # search results received, errors included

    def observe(self, event: Any) -> None:
        """Account one raw stream event (``message_start``, ``content_block_*``)."""
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.start_usage = TokenUsage.from_api(event.message.usage)
        elif kind == "content_block_start":
            self.blocks += 1
            block = event.content_block
            if block.type == "server_tool_use" and block.name == "web_search":
                self.searches += 1
            elif block.type == "web_search_tool_result":
                self.results += 1
                if not isinstance(block.content, list):
                    self.search_errors += 1
        elif kind == "content_block_delta":
            delta = event.delta
            text = getattr(delta, "text", None) or getattr(delta, "partial_json", None)
            text = text or getattr(delta, "thinking", None)
            if isinstance(text, str):
                self.output_bytes += len(text.encode("utf-8"))

    def finished(self, usage: TokenUsage) -> None:
        """``message_delta`` arrived: ``usage`` is the attempt's whole, cumulative usage."""
        self.final_usage = usage


def outcome_of(error: BaseException, progress: AttemptProgress) -> Outcome:
    """What the API may have done with an attempt that ended with ``error``.

    Nothing is billed for a request that never reached the API (a connection refused, a pool or
    write timeout) or that it answered with an error status (429, 5xx: sent before any work). An
    ``event: error`` before ``message_start`` is the same: the API sends ``message_start`` before it
    samples anything. Once the stream has begun, the server ending it (an error event, a dropped
    connection, a stream cut short) stopped its work; our own stop (a kill, a read timeout) did
    not tell the server anything, so it may have gone on to the end.
    """
    if not progress.sent:
        return Outcome.NOT_RUN
    if isinstance(error, anthropic.APIStatusError):
        if error.status_code != 200 or progress.start_usage is None:
            return Outcome.NOT_RUN
        return Outcome.STOPPED
    cause = error.__cause__ if isinstance(error, anthropic.APIConnectionError) else error
    if isinstance(cause, _NOT_SENT):
        return Outcome.NOT_RUN
    if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
        return Outcome.UNKNOWN
    server_ended = isinstance(error, anthropic.APIConnectionError | httpx2.TransportError | StreamIncomplete)
    if server_ended and progress.start_usage is not None:
        return Outcome.STOPPED
    return Outcome.UNKNOWN  # cancelled, or sent with no word of what the API did with it
