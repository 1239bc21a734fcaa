"""What one API attempt received before it ended: the facts a failed attempt's charge is bounded from.

An attempt that fails may still have been billed (the API bills what it sampled and the searches
it ran, whether or not the stream reached us). :class:`AttemptProgress` is a fold over the
transport's events (:mod:`core.api.transport`): :meth:`AttemptProgress.observe` is its only step,
it reads nothing else, and :func:`fold` runs it over a whole sequence. It imports no SDK (the
budget reads it, and commands that send nothing must not load the SDK):
:func:`core.api.failure.outcome_of` says, from how the attempt ended, what the API may have done
with it. The dollars are worked out by :mod:`core.budget.charges`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from core.api.transport import (
    BatchHold,
    BlockStarted,
    MessageDelta,
    MessageStarted,
    OutputDelta,
    Responded,
    SearchResults,
    StreamEvent,
    TextDelta,
)
from core.usage import TokenUsage


class Outcome(enum.Enum):
    """What the API may have done with a failed attempt, as far as the client can tell."""

    NOT_RUN = "not_run"  # never reached it, or it answered with an error status: nothing billed
    STOPPED = "stopped"  # the server ended the stream (error event, dropped, cut short) mid-answer
    UNKNOWN = "unknown"  # it may still be running: we stopped listening (cancelled, timed out)


@dataclass(slots=True)
class AttemptProgress:
    """What one attempt has received so far; read after it fails to bound what it was billed."""

    number: int = 1  # the attempt's number within its call, from 1
    chars: int = 0  # text characters streamed (what a retry abandons, for the panes)
    sent: bool = False  # the request was handed to the HTTP client
    responded: bool = False  # the API answered 200 and its stream began (headers arrived)
    request_id: str | None = None
    start_usage: TokenUsage | None = None  # ``message_start``'s usage: the first sampling's input
    final_usage: TokenUsage | None = None  # cumulative usage once ``message_delta`` arrived
    output_bytes: int = 0  # UTF-8 bytes of text, thinking and tool-input JSON streamed
    blocks: int = 0  # content blocks started
    searches: int = 0  # web searches the model issued (``server_tool_use`` blocks)
    search_errors: int = 0  # results that were errors (not billed)
    results: int = 0  # search results received, errors included
    batch: BatchHold | None = None  # the request waits in a Message Batch (a batch layer's)

    def observe(self, event: StreamEvent) -> None:
        """Fold one stream event in (updated in place: the stream's hot path allocates nothing here).

        Text is counted in characters for the panes and in UTF-8 bytes for the bound (an ASCII
        fragment's bytes are its length: nothing is encoded for it).
        """
        match event:
            case TextDelta(text=text):
                self.chars += len(text)
                self.output_bytes += len(text) if text.isascii() else len(text.encode("utf-8"))
            case OutputDelta(text=text):
                self.output_bytes += len(text) if text.isascii() else len(text.encode("utf-8"))
            case BlockStarted(type=kind, name=name):
                self.blocks += 1
                if kind == "server_tool_use" and name == "web_search":
                    self.searches += 1
            case SearchResults(error_code=error_code):
                self.blocks += 1
                self.results += 1
                if error_code is not None:
                    self.search_errors += 1
            case MessageDelta(usage=usage):
                self.final_usage = usage  # cumulative: the attempt's whole usage so far
            case MessageStarted(usage=usage):
                self.start_usage = usage
            case BatchHold():
                self.batch = event
            case Responded(request_id=request_id):
                self.responded = True  # a 200 and its headers: what fails from here broke the stream
                self.request_id = request_id
            case _:
                pass  # citations, a finished search's query, the outcome: nothing billed


def fold(events: Iterable[StreamEvent], progress: AttemptProgress | None = None) -> AttemptProgress:
    """``progress`` (a new one by default) after ``events``."""
    progress = progress if progress is not None else AttemptProgress(sent=True)
    for event in events:
        progress.observe(event)
    return progress
