"""Dropping the agent's narration of its own process from a report body.

Claude announces a search before making it ("Let me search for …", "I'll look at …"). That text
is process, not findings. The rule is narrow on purpose: only uncited text that comes directly
before a search in the same turn is examined, and only sentences that announce an action are
dropped; a turn without searches, cited text and any other sentence are kept whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Block = Mapping[str, Any]

_SEARCHES = frozenset({"server_tool_use", "tool_use"})
_ANNOUNCEMENT = re.compile(
    r"""^\s*
    (?:[^.!?\n]{0,60},\s*)?                      # an optional lead-in: "To answer this, "
    (?:(?:now|next|first|then|so|okay|ok|great|alright|finally),?\s+)*
    (?:let\s+me|let's|i'll|i\s+will|i'm\s+going\s+to|i\s+am\s+going\s+to|i\s+need\s+to|i\s+should|
       i\s+want\s+to|i'd\s+like\s+to|now\s+i'll|next,?\s+i'll|i'm\s+now\s+going\s+to)
    \b[^\n]*?
    \b(?:search|look|check|find|research|verify|dig|explor|gather|investigat|quer|confirm|cross-check|
        review|examin|see\s+what|get\s+more|pull\s+up|start\s+by)
    """,
    re.IGNORECASE | re.VERBOSE,
)
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n+|$)")


def announces(sentence: str) -> bool:
    """Whether a sentence only says what the agent is about to do (search, look, check …)."""
    return bool(_ANNOUNCEMENT.match(sentence))


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.findall(text) if s]


def _without_announcements(text: str) -> str:
    kept = [s for s in _sentences(text) if not announces(s)]
    return "".join(kept)


def strip_narration(blocks: Sequence[Block]) -> list[Block]:
    """The blocks of one turn with search announcements removed (copies; inputs untouched)."""
    out: list[Block] = []
    for index, block in enumerate(blocks):
        if block.get("type") == "text" and not block.get("citations") and _before_search(blocks, index):
            text = _without_announcements(str(block.get("text", "")))
            if not text.strip():
                continue
            block = {**block, "text": text}
        out.append(block)
    return out


def _before_search(blocks: Sequence[Block], index: int) -> bool:
    """The next block that is not whitespace-only text is a search call."""
    for block in blocks[index + 1 :]:
        if block.get("type") == "text" and not str(block.get("text", "")).strip():
            continue
        return block.get("type") in _SEARCHES
    return False
