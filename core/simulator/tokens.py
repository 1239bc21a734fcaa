"""One token approximation for everything the simulator counts.

Real tokenizers are unavailable offline, so every count is ``ceil(characters / 4)``: what matters
to the product is that counts are consistent (a prompt's count equals the sum of its parts, results
add input tokens, caching and context-window checks agree), not that they match a real tokenizer.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 3
"""Tokens of the role markers around each message."""
WEB_SEARCH_TOOL_OVERHEAD = 280
"""The hidden instructions the API adds when the web search tool is enabled."""

# Keys whose values the API does not bill as tokens (identifiers, citation metadata, markers).
_UNCOUNTED_KEYS = frozenset(
    {
        "type",
        "id",
        "tool_use_id",
        "cache_control",
        "citations",
        "caller",
        "page_age",
        "url",
        "title",
        "encrypted_index",
        "cited_text",
        "role",
    }
)


def count_text(text: str) -> int:
    """Tokens of a piece of text: ``ceil(len / 4)``."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _string_chars(value: Any) -> int:
    """Characters of every billable string inside a JSON value."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_string_chars(v) for k, v in value.items() if k not in _UNCOUNTED_KEYS)
    if isinstance(value, list):
        return sum(_string_chars(v) for v in value)
    if value is None or isinstance(value, bool):
        return 0
    return len(str(value))


def count_block(block: dict[str, Any]) -> int:
    """Tokens of one content block (text, tool use and results incl. encrypted page content)."""
    kind = block.get("type")
    if kind in ("tool_use", "server_tool_use"):
        return count_text(json.dumps(block.get("input", {}))) + 1
    if kind == "image" or kind == "document":
        return 1500
    return -(-_string_chars(block) // CHARS_PER_TOKEN)


def count_tool(tool: dict[str, Any]) -> int:
    """Tokens of one tool definition."""
    if str(tool.get("type", "")).startswith("web_search"):
        return WEB_SEARCH_TOOL_OVERHEAD + count_text(json.dumps(tool, sort_keys=True))
    return count_text(json.dumps(tool, sort_keys=True))


class Segment:
    """One cacheable unit of a prompt, in the API's order: tools, then system, then message blocks."""

    __slots__ = ("cache_control", "canonical", "message_index", "tokens")

    def __init__(
        self, canonical: bytes, tokens: int, cache_control: dict[str, Any] | None, message_index: int | None
    ) -> None:
        self.canonical = canonical
        self.tokens = tokens
        self.cache_control = cache_control
        self.message_index = message_index


def _canonical(block: dict[str, Any]) -> bytes:
    """The block without its cache marker and ``None`` fields, so equal content hashes equally."""
    return json.dumps(_strip(block), sort_keys=True, separators=(",", ":")).encode()


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None and k != "cache_control"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def message_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's content as a list of blocks (a string is one text block)."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def prompt_segments(body: dict[str, Any]) -> list[Segment]:
    """Every tool, system block and message block with its token count and cache marker."""
    segments: list[Segment] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            segments.append(Segment(_canonical(tool), count_tool(tool), tool.get("cache_control"), None))
    system = body.get("system")
    if isinstance(system, str) and system:
        system = [{"type": "text", "text": system}]
    if isinstance(system, list):
        for block in system:
            if isinstance(block, dict):
                segments.append(
                    Segment(_canonical(block), count_block(block), block.get("cache_control"), None)
                )
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        blocks = message_blocks(message)
        for position, block in enumerate(blocks):
            tokens = count_block(block) + (MESSAGE_OVERHEAD if position == 0 else 0)
            canonical = str(message.get("role", "")).encode() + b":" + _canonical(block)
            segments.append(Segment(canonical, tokens, block.get("cache_control"), index))
    return segments
