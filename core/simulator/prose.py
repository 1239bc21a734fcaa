"""Synthetic, readable prose that cites the synthetic web.

Produces text pieces: ``(text, citations)``; a piece with citations becomes a cited text block
(``web_search_result_location``), one without becomes a plain block, like the API's answers that are
split across several text blocks. Everything is drawn from the caller's ``random.Random``.
"""

from __future__ import annotations

import random
import re
from typing import Any

from core.simulator import crypto
from core.simulator.synthweb import Page

Piece = tuple[str, list[dict[str, Any]]]

_LEADS = (
    "According to {site}, ",
    "{Site} reports that ",
    "One analysis finds that ",
    "Recent coverage notes that ",
    "Sources agree on one point: ",
    "The data compiled by {site} suggests that ",
)
_CONNECTORS = (" ", " Moreover, ", " At the same time, ", " By contrast, ", " In addition, ")
_INTROS = (
    "I'll look into {topic}, starting with the most recent sources.",
    "Let me research {topic} and check what the current evidence says.",
    "To answer this, I'll search for up-to-date information on {topic}.",
)
_BRIDGES = (
    "Let me look for more detail on {query}.",
    "I'll search for {query} to cross-check this.",
    "Next, I'll look at {query}.",
)
_CLOSERS = (
    "Overall, the evidence on {topic} points in a consistent direction, though figures differ by source and "
    "region, so the numbers above should be read as indicative rather than precise.",
    "Taken together, these sources suggest that {topic} is developing quickly, with cost and policy as the "
    "main levers and considerable uncertainty about timing.",
    "In short, {topic} shows real momentum, but the strongest claims rest on a handful of studies and "
    "deserve scrutiny before they inform a decision.",
)
_FILLER = (
    "Estimates vary across sources, mostly because of different definitions and time frames.",
    "The trend is clearer in aggregate figures than in any single market.",
    "Several observers caution that the most optimistic projections assume stable input prices.",
    "This matters because early choices tend to lock in supply chains for years.",
    "The gap between announced plans and delivered projects remains significant.",
)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", text)
    return [p for p in parts if p and not p.startswith("[Simulated")]


def citation(page: Page, cited_text: str, result_index: int) -> dict[str, Any]:
    """A ``web_search_result_location`` for a sentence of ``page``."""
    return {
        "type": "web_search_result_location",
        "cited_text": cited_text[:150],
        "url": page.url,
        "title": page.title,
        "encrypted_index": crypto.seal({"u": page.url, "i": result_index, "c": cited_text[:150]}),
    }


def intro(rng: random.Random, topic: str) -> str:
    return rng.choice(_INTROS).format(topic=topic)


def bridge(rng: random.Random, query: str) -> str:
    return " " + rng.choice(_BRIDGES).format(query=query)


def closer(rng: random.Random, topic: str) -> str:
    return "\n\n" + rng.choice(_CLOSERS).format(topic=topic)


def filler(rng: random.Random) -> str:
    return " " + rng.choice(_FILLER)


def cited_pieces(rng: random.Random, pages: list[Page], budget_tokens: int) -> list[Piece]:
    """Sentences citing ``pages`` until about ``budget_tokens`` of text (at least one citation)."""
    pieces: list[Piece] = [("\n\n", [])]
    used = 0
    while pages and (used < budget_tokens or len(pieces) == 1):
        index = rng.randrange(len(pages))
        page = pages[index]
        sentence = rng.choice(_sentences(page.text) or [page.title])
        site = page.title.rsplit("|", 1)[-1].replace("(simulated)", "").strip()
        lead = rng.choice(_LEADS).format(site=site, Site=site)
        body = sentence[0].lower() + sentence[1:] if sentence[:2] != "A " else "a " + sentence[2:]
        if len(pieces) > 1:
            connector = rng.choice(_CONNECTORS)
            pieces.append((connector, []))
            if connector.strip():
                lead = lead[0].lower() + lead[1:] if not lead.startswith(site) else lead
        text = lead + body
        pieces.append((text, [citation(page, sentence, index)]))
        used += len(text) // 4 + 2
    return pieces


def report_heading(topic: str) -> str:
    return (
        f"# Report: {topic[:1].upper()}{topic[1:]}\n\n## Summary\n\nThis report draws on the searches above."
    )


def report_section(title: str) -> str:
    return f"\n\n## {title}\n\n"


def sources_section(pages: list[Page]) -> str:
    lines = "\n".join(f"- [{p.title}]({p.url})" for p in pages)
    return f"\n\n## Sources\n\n{lines}\n"
