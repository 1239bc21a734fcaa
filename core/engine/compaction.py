"""Keeping a long conversation inside the model's context window.

The oldest research turns are summarised into a note by a model call (budgeted and retried like
any other) and dropped whole: a search result's encrypted content is never edited, only removed
together with the turn that holds it. The brief (the first user message) and the most recent
turns are always kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.engine.turn_plan import CONTINUE_PROMPT
from core.reports.render import render_blocks

CHARS_PER_TOKEN = 3.5  # calibrated against the simulator's and the API's English text
SUMMARY_MAX_TOKENS = 1500
SUMMARY_PROMPT = (
    "You are compacting the working notes of a research agent whose conversation no longer fits "
    "the model's context window. Summarise the findings below into dense notes: every figure, "
    "date and named source with its link, and the open questions. Do not add anything new."
)
NOTE_PREFIX = "Notes on my earlier research (compacted to save context):\n\n"


class SizeCache:
    """Characters of each message, measured once: conversations only grow at the end.

    Keyed by identity and holding the message, so a recycled ``id`` can never return a stale size.
    """

    def __init__(self) -> None:
        self._sizes: dict[int, tuple[dict[str, Any], int]] = {}

    def chars(self, messages: Sequence[dict[str, Any]]) -> int:
        total = 0
        for message in messages:
            entry = self._sizes.get(id(message))
            if entry is None or entry[0] is not message:
                entry = (message, len(repr(message)))
                self._sizes[id(message)] = entry
            total += entry[1]
        if len(self._sizes) > 4 * len(messages) + 64:  # forget messages dropped by compaction
            kept = {id(m) for m in messages}
            self._sizes = {k: v for k, v in self._sizes.items() if k in kept}
        return total


def estimate_tokens(messages: Sequence[dict[str, Any]], sizes: SizeCache | None = None) -> int:
    chars = sizes.chars(messages) if sizes is not None else len(repr(messages))
    return int(chars / CHARS_PER_TOKEN)


def is_prompt_too_long(message: str) -> bool:
    return "prompt is too long" in message.lower()


@dataclass(frozen=True, slots=True)
class CompactionPlan:
    """Messages ``[1:keep_from]`` are summarised; the brief and ``[keep_from:]`` stay verbatim."""

    keep_from: int
    notes: str


def plan_compaction(messages: Sequence[dict[str, Any]], keep_recent_turns: int) -> CompactionPlan | None:
    """Which turns to drop: whole user turns between the brief and the last ``keep_recent_turns``.

    Returns None when there is nothing old enough to drop.
    """
    turn_starts = [
        i for i, m in enumerate(messages)
        if m["role"] == "user" and i > 0 and messages[i - 1]["role"] == "assistant" and _opens_turn(m)
    ]  # fmt: skip
    for keep in range(keep_recent_turns, 0, -1):
        if len(turn_starts) >= keep and turn_starts[-keep] > 2:
            keep_from = turn_starts[-keep]
            break
    else:
        return None
    numbering: dict[str, int] = {}
    titles: dict[str, str] = {}
    parts = []
    for message in messages[1:keep_from]:
        if message["role"] == "assistant":
            parts.append(render_blocks(message["content"], numbering, titles))
    sources = "\n".join(f"[{n}] {titles.get(url, url)}: {url}" for url, n in numbering.items())
    notes = "\n\n".join(p.strip() for p in parts if p.strip())
    if sources:
        notes += f"\n\nSources:\n{sources}"
    return CompactionPlan(keep_from=keep_from, notes=notes)


def _opens_turn(message: dict[str, Any]) -> bool:
    """A user message that starts a turn, as opposed to a "continue" after max_tokens."""
    content = message.get("content")
    first = content[0] if isinstance(content, list) and content else {}
    return not (isinstance(first, dict) and first.get("text") == CONTINUE_PROMPT)


def compacted(messages: Sequence[dict[str, Any]], plan: CompactionPlan, summary: str) -> list[dict[str, Any]]:
    """The brief, the summary as an assistant note, then the kept turns unchanged."""
    note = {"role": "assistant", "content": [{"type": "text", "text": NOTE_PREFIX + summary}]}
    return [messages[0], note, *messages[plan.keep_from :]]


def summary_request(model: str, notes: str) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": SUMMARY_MAX_TOKENS,
        "system": SUMMARY_PROMPT,
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"<notes>\n{notes}\n</notes>"}]}],
    }
