"""Plain answers: text sized to the request, with no research narration when there is no search tool.

A short prompt ("say hi") gets a sentence or two, a paragraph-long one a paragraph, a long one the
configured length. An answer stops adding sentences before ``max_tokens`` when it can, as the model
finishes early instead of being cut; only when even the first sentence does not fit is it cut.
"""

from __future__ import annotations

import random
from typing import Any

_SHORT = (
    "Sure, happy to help with {topic}.",
    "Hello! Here is a brief answer on {topic}.",
    "Of course. In short: {topic} depends mostly on cost and scale.",
)
_SENTENCES = (
    "The main factors are cost, scale and how quickly the technology matures.",
    "Most estimates agree on the direction, though they differ on the pace.",
    "It helps to separate what is established from what is still projected.",
    "Regional differences are large, so a single global figure can mislead.",
    "The strongest evidence comes from deployed projects rather than forecasts.",
    "Policy support has mattered, but falling costs now do most of the work.",
)
_CLOSERS = (
    "Let me know if you would like more detail on any part of this.",
    "I can go deeper into any of these points if that would help.",
)


def target_tokens(text: str, rng: random.Random, configured: tuple[int, int]) -> int:
    """How long an answer to ``text`` runs: short prompts get short answers."""
    words = len(text.split())
    if words <= 12:
        return rng.randint(8, 40)
    if words <= 60:
        return rng.randint(60, 180)
    return rng.randint(*sorted(configured))


def plain(rng: random.Random, topic: str, target: int) -> list[str]:
    """Sentences of a plain answer of about ``target`` tokens, the first one short."""
    parts = [rng.choice(_SHORT).format(topic=topic)]
    used = len(parts[0]) // 4
    pool = list(_SENTENCES)
    rng.shuffle(pool)
    while pool and used < target - 16:
        sentence = " " + pool.pop()
        parts.append(sentence)
        used += len(sentence) // 4
    if target > 60:
        parts.append("\n\n" + rng.choice(_CLOSERS))
    return parts


def from_tool_results(rng: random.Random, results: list[dict[str, Any]], names: dict[str, str]) -> str:
    """An answer built on what the client's tools returned."""
    lines = []
    for result in results:
        name = names.get(str(result.get("tool_use_id")), "the tool")
        content = result.get("content")
        if isinstance(content, list):
            content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        snippet = " ".join(str(content or "").split())[:200] or "no content"
        verb = "reported an error" if result.get("is_error") else "returned"
        lines.append(f"{name} {verb}: {snippet}")
    lead = rng.choice(("Here is what I found.", "Based on the tool results:", "The results are in."))
    return lead + "\n\n" + "\n".join(f"- {line}" for line in lines)
