"""A model of the real tokenizer's density by script, for everything the simulator counts.

Real tokenizers are unavailable offline, but their density is predictable by kind of character: English
prose runs at about four characters per token, digits and punctuation are denser (so code, JSON and URLs
cost more per character), other alphabets (accented Latin, Cyrillic, Greek, Arabic...) about two
characters per token, Chinese, Japanese and Korean about one token per character, emoji and other
symbols more than one. Each character has a cost in quarter tokens; a text costs the rounded-up sum.

What matters to the product is that counts follow the script the way the API's do (a Chinese prompt
fills the context window four times faster than English of the same length) and stay consistent
(usage, ``count_tokens``, cache minimums and context windows all use this one count).
"""

from __future__ import annotations

import json
import re
from typing import Any

UNITS_PER_TOKEN = 4
"""Costs are in quarter tokens so that the arithmetic stays exact integers."""
WORD_UNITS = 1
"""ASCII letters and whitespace: about four characters per token, as English prose."""
DENSE_UNITS = 2
"""ASCII digits and punctuation: about two characters per token (numbers, code, URLs, JSON)."""
ALPHABET_UNITS = 2
"""Letters of other alphabets (accented Latin, Greek, Cyrillic, Hebrew, Arabic, Indic...)."""
CJK_UNITS = 4
"""Han ideographs, kana, Hangul and their punctuation: about one token per character."""
SYMBOL_UNITS = 8
"""Emoji and other symbols outside the basic planes of text: about two tokens each."""
MESSAGE_OVERHEAD = 3
"""Tokens of the role markers around each message."""
WEB_SEARCH_TOOL_OVERHEAD = 280
"""The hidden instructions the API adds when the web search tool is enabled."""

_ASCII_DENSE = bytes(c for c in range(128) if not (chr(c).isalpha() or chr(c).isspace()))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# (first, last, units) code point ranges beyond ASCII; anything not listed counts as ALPHABET_UNITS.
_RANGES: tuple[tuple[int, int, int], ...] = (
    (0x1100, 0x11FF, CJK_UNITS),  # Hangul Jamo
    (0x2E80, 0x9FFF, CJK_UNITS),  # CJK radicals, punctuation, kana, ideographs
    (0xA960, 0xA97F, CJK_UNITS),  # Hangul Jamo extended
    (0xAC00, 0xD7FF, CJK_UNITS),  # Hangul syllables
    (0xF900, 0xFAFF, CJK_UNITS),  # CJK compatibility ideographs
    (0xFE30, 0xFE4F, CJK_UNITS),  # CJK compatibility forms
    (0xFF00, 0xFFEF, CJK_UNITS),  # full- and half-width forms
    (0x2000, 0x206F, DENSE_UNITS),  # general punctuation (dashes, quotes)
    (0x2190, 0x2BFF, SYMBOL_UNITS),  # arrows, maths, technical symbols, dingbats
    (0x1F000, 0x1FAFF, SYMBOL_UNITS),  # emoji and pictographs
    (0x20000, 0x3FFFF, CJK_UNITS),  # CJK extension planes
)


def char_units(char: str) -> int:
    """The cost of one character in quarter tokens."""
    code = ord(char)
    if code < 128:
        return WORD_UNITS if char.isalpha() or char.isspace() else DENSE_UNITS
    for first, last, units in _RANGES:
        if first <= code <= last:
            return units
    return ALPHABET_UNITS


def text_units(text: str) -> int:
    """The cost of a text in quarter tokens (fast for ASCII, which most text is)."""
    if text.isascii():
        raw = text.encode("ascii")
        dense = len(raw) - len(raw.translate(None, _ASCII_DENSE))
        return len(raw) * WORD_UNITS + dense * (DENSE_UNITS - WORD_UNITS)
    ascii_part = _NON_ASCII.sub("", text)
    units = text_units(ascii_part)
    for match in _NON_ASCII.finditer(text):
        units += char_units(match.group())
    return units


def count_text(text: str) -> int:
    """Tokens of a piece of text (see the module docstring for the model)."""
    return -(-text_units(text) // UNITS_PER_TOKEN)


def truncate_to_tokens(text: str, tokens: int) -> str:
    """The longest prefix of ``text`` that counts at most ``tokens`` tokens (a ``max_tokens`` cut)."""
    budget = max(0, tokens) * UNITS_PER_TOKEN
    if text_units(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the largest prefix length whose cost fits
        mid = (lo + hi + 1) // 2
        if text_units(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def json_text(value: Any) -> str:
    """JSON as the model writes it (``ensure_ascii`` off, so a Chinese string counts as Chinese)."""
    return json.dumps(value, ensure_ascii=False)


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


def _string_units(value: Any) -> int:
    """Cost in quarter tokens of every billable string inside a JSON value."""
    if isinstance(value, str):
        return text_units(value)
    if isinstance(value, dict):
        return sum(_string_units(v) for k, v in value.items() if k not in _UNCOUNTED_KEYS)
    if isinstance(value, list):
        return sum(_string_units(v) for v in value)
    if value is None or isinstance(value, bool):
        return 0
    return text_units(str(value))


def count_block(block: dict[str, Any]) -> int:
    """Tokens of one content block (text, tool use and results incl. encrypted page content)."""
    kind = block.get("type")
    if kind in ("tool_use", "server_tool_use"):
        return count_text(json_text(block.get("input", {}))) + 1
    if kind == "image" or kind == "document":
        return 1500
    return -(-_string_units(block) // UNITS_PER_TOKEN)


def count_tool(tool: dict[str, Any]) -> int:
    """Tokens of one tool definition."""
    if str(tool.get("type", "")).startswith("web_search"):
        return WEB_SEARCH_TOOL_OVERHEAD + count_text(json.dumps(tool, sort_keys=True, ensure_ascii=False))
    return count_text(json.dumps(tool, sort_keys=True, ensure_ascii=False))


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
