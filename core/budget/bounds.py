"""Bounds of a request's input tokens that no tokenizer can exceed: never a characters-per-token guess.

A token is at least one byte of UTF-8, so the tokens of any text are at most its UTF-8 bytes; the
JSON a request is sent as holds every billable string (escapes only add bytes), so its size in
bytes bounds its tokens whatever the script (English, Japanese, code, URLs, base64). After a call,
the API's own ``usage`` bounds the conversation exactly: the next prompt is at most what the call
read plus what it wrote (see :func:`grown_bound`). What the API adds that is not in the request,
the web search tool's hidden instructions, is bounded by ``TOOL_HIDDEN_TOKENS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from core.budget.counting import gate_for
from core.usage import TokenUsage

log = logging.getLogger(__name__)

TOOL_HIDDEN_TOKENS = 1_000
"""The web search tool's hidden instructions (~280-350 tokens measured; bounded with room)."""
SEAM_TOKENS = 64
"""Added to every bound: tokens that form across the seams where texts are joined."""
COUNT_WORTH_ASKING = 16_000
"""Below this many bytes the byte bound is tight enough; above it the API's free token count is
asked for (prior reports, long system prompts: text whose bytes overstate its tokens ~4x)."""
COUNT_MARGIN = 1.02
"""The API calls its counts estimates: a count is raised by 2% before it serves as a bound."""
COUNT_TIMEOUT_S = 30.0


def utf8_bytes(value: Any) -> int:
    """Bytes of ``value`` as compact JSON in UTF-8: an upper bound of the tokens it holds."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def tools_bound(tools: list[dict[str, Any]] | None) -> int:
    """Tokens the ``tools`` of a request may add: their JSON plus the hidden instructions."""
    return utf8_bytes(tools) + TOOL_HIDDEN_TOKENS if tools else 0


def conversation_bound(system: Any, messages: list[dict[str, Any]]) -> int:
    """Tokens of a system prompt and messages, bounded by their UTF-8 bytes."""
    return utf8_bytes(system) + sum(utf8_bytes(m) for m in messages) + SEAM_TOKENS


def grown_bound(call_input_bound: int, usage: TokenUsage, search_input_tokens: int) -> int:
    """A bound of the conversation after a call, from the call's usage.

    The new history is the prompt the call read plus the content it produced (its output tokens,
    the results of its searches). Both ``usage.total_input_tokens`` (every token read, results
    included) and the prompt's own bound plus the results allowed per search bound that prompt;
    the smaller is taken (the API bills re-reads of a search loop as input, which only inflates
    the first).
    """
    read = min(
        usage.total_input_tokens,
        call_input_bound + usage.web_search_requests * search_input_tokens,
    )
    return read + usage.output_tokens + SEAM_TOKENS


class TokenCounter(Protocol):
    """What counts a request's input tokens (a :class:`core.api.transport.Transport` does)."""

    async def count_tokens(self, request: Mapping[str, Any]) -> int: ...


async def counted_bound(
    counter: TokenCounter, model: str, system: Any, messages: list[dict[str, Any]], byte_bound: int
) -> int:
    """The tighter of ``byte_bound`` and the ``count_tokens`` endpoint's count (with its margin).

    Asked only when the bytes are large enough for it to matter and the endpoint's own rate limit
    allows (:mod:`core.budget.counting`); any failure (the endpoint unreachable, rate limited, or
    absent) keeps the byte bound, which is always safe, and pauses counting for a while.
    """
    if byte_bound < COUNT_WORTH_ASKING:
        return byte_bound
    gate = gate_for(counter)
    if not gate.take():
        return byte_bound
    try:
        request: dict[str, Any] = {"model": model, "system": system, "messages": messages}
        async with asyncio.timeout(COUNT_TIMEOUT_S):
            counted = await counter.count_tokens(request)
    except Exception as error:  # an optional refinement: the byte bound stands (logged, not lost)
        gate.failed()
        log.warning("count_tokens failed, bounding input by its bytes instead: %s", error)
        return byte_bound
    return min(byte_bound, int(counted * COUNT_MARGIN) + SEAM_TOKENS)
