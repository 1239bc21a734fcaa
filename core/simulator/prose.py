"""Synthetic, readable prose that cites the synthetic web.

Produces text pieces: ``(text, citations)``; a piece with citations becomes a cited text block
(``web_search_result_location``), one without becomes a plain block, like the API's answers that are
split across several text blocks. Everything is drawn from the caller's ``random.Random``.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Mapping
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
        body = restate(sentence, page) or (
            sentence[0].lower() + sentence[1:] if sentence[:2] != "A " else "a " + sentence[2:]
        )
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


# --- reports that follow the conversation (issue 13) -----------------------------------------

_QUESTION_LEAD = re.compile(
    r"^\s*(?:(?:will|would|can|could|should|shall|may|might|must|do|does|did|is|are|was|were|has|have|had|"
    r"how|what|why|when|where|which|who|map|assess|trace|survey|analy[sz]e|describe|explain|compare|"
    r"investigate|summari[sz]e|evaluate|write|find|list|research|review|examine)\s+)+",
    re.IGNORECASE,
)
_PHRASE_STOP = re.compile(
    r"\b(?:in|on|at|by|for|from|to|of|with|before|after|during|over|under|than|and|or|but|if|whether|as)\b"
)
_FILLERS = frozenset(
    {"is", "are", "was", "were", "be", "been", "fast", "much", "many", "far", "long", "soon", "your", "our"}
)
_DOCUMENT = re.compile(
    r"\b(?:report|brief|analysis|summary|overview|synthesis|review|memo|note|essay)\s*$", re.IGNORECASE
)
_SOURCE_LINE = re.compile(r"^\[([a-z0-9][a-z0-9_-]{0,63}:\d+)\] (.+) <https?://\S+>\s*$", re.MULTILINE)


def subject_phrase(question: str) -> str:
    """A noun phrase for what a question is about, so prose can name it grammatically.

    "Will sodium-ion batteries displace LFP in grid storage?" -> "sodium-ion batteries": the words
    after the question's auxiliaries, up to the first plural-looking noun (the head of the
    subject, before the main verb), else the first two words, never past a preposition.
    """
    text = _QUESTION_LEAD.sub("", question.strip().split("?")[0])
    clause, *rest = _PHRASE_STOP.split(text, maxsplit=1)
    if rest and _DOCUMENT.search(clause):  # "your final report on offshore wind": what it is on
        clause = _PHRASE_STOP.split(rest[0], maxsplit=1)[0]
    words = [w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9+\-/']*", clause) if w.lower() not in _FILLERS]
    if not words:
        return "the topic"
    phrase = noun_phrase(words)
    return phrase if phrase[:2].isupper() else phrase[:1].lower() + phrase[1:]


def _plural(word: str) -> bool:
    low = word.lower()
    return len(low) > 3 and low.endswith("s") and not low.endswith(("ss", "is", "us"))


_UNCITED_SENTENCES = (
    "Across the sources consulted, {subject} shows clear momentum, but the pace differs by market.",
    "Cost remains the main lever for {subject}, followed by policy support and supply-chain maturity.",
    "Figures on {subject} differ between sources, mostly because of definitions and time frames.",
    "The strongest claims about {subject} rest on a small number of studies and deserve scrutiny.",
    "For {subject}, the next two years are likely to decide which markets move first.",
    "Announced plans for {subject} still run well ahead of delivered projects.",
    "Observers who are cautious about {subject} point to input prices and uncertain demand.",
)
_OPEN_QUESTIONS = (
    "How durable are the recent cost declines for {subject}?",
    "Which policy changes would most accelerate or delay {subject}?",
    "How reliable are the projections that the most optimistic sources give for {subject}?",
)
_LABEL_SENTENCES = (
    "The {agent} report relies on {site} for its figures on {subject} {label}.",
    "{Site}, cited in the {agent} report, points in the same direction {label}.",
    "Evidence gathered for the {agent} report, notably from {site}, supports this reading {label}.",
    "The {agent} report also records the caveats that {site} raises {label}.",
    "On timing, the {agent} report draws on {site} {label}.",
)


def prior_labels(text: str) -> list[tuple[str, str]]:
    """``(label, source title)`` for every labelled source of the earlier reports in a prompt."""
    return [(f"[{m.group(1)}]", m.group(2)) for m in _SOURCE_LINE.finditer(text)]


def _site(title: str) -> str:
    return title.rsplit("|", 1)[-1].replace("(simulated)", "").strip() or "one source"


def label_sentences(rng: random.Random, labels: list[tuple[str, str]], subject: str, count: int) -> str:
    """Sentences that cite earlier reports' sources by their labels (a synthesis citing through)."""
    if not labels:
        return ""
    picked = _spread(rng, labels, count)
    sentences = []
    for label, title in picked:
        agent = label[1:].split(":", 1)[0].replace("-", " ").replace("_", " ")
        site = _site(title)
        template = rng.choice(_LABEL_SENTENCES)
        sentences.append(template.format(agent=agent, site=site, Site=site, subject=subject, label=label))
    return " ".join(sentences)


def _spread(rng: random.Random, labels: list[tuple[str, str]], count: int) -> list[tuple[str, str]]:
    """Up to ``count`` labels, one report at a time: a synthesis draws on every report it read."""
    by_report: dict[str, list[tuple[str, str]]] = {}
    for item in labels:
        by_report.setdefault(item[0][1:].split(":", 1)[0], []).append(item)
    pools = [rng.sample(pool, k=len(pool)) for pool in by_report.values()]
    rng.shuffle(pools)
    picked: list[tuple[str, str]] = []
    while len(picked) < count and any(pools):
        for pool in pools:
            if pool and len(picked) < count:
                picked.append(pool.pop())
    return picked


def uncited_report(
    rng: random.Random,
    subject: str,
    labels: list[tuple[str, str]],
    earlier: list[tuple[str, str]] | None = None,
    numbers: Mapping[str, int] | None = None,
) -> str:
    """A report written from what the conversation found: no search, no citation block.

    The real API often answers "write your report" this way: its findings repeat what the earlier
    turns found (``earlier``: their cited sentences, with the URL each cited), now without citation
    blocks; labels of earlier reports (for a later layer) carry sources in the text. Given the
    prompt's numbered sources (``numbers``: URL -> number), it cites them inline as a model does:
    a sentence found on a page cites that page's number, a general finding one or two of them.
    """
    cite = _Citer(numbers or {}, subject)
    title = subject[:1].upper() + subject[1:]
    findings = [s.format(subject=subject) for s in rng.sample(_UNCITED_SENTENCES, k=4)]
    found = rng.sample(earlier, k=min(4, len(earlier))) if earlier else []
    found_text = [cite.page(s[:1].upper() + s[1:], url) for s, url in found]
    parts = [
        f"\n\n# Report: {title}",
        "## Summary",
        f"This report brings together what the earlier searches found about {subject}. "
        + cite.general(findings[0]),
        "## Findings",
        " ".join([*found_text, *(cite.general(f) for f in findings[1:])]),
    ]
    through = label_sentences(rng, labels, subject, 6)
    if through:
        parts += ["## What the earlier reports show", through]
    parts += ["## Open questions", "\n".join(f"- {q.format(subject=subject)}" for q in _OPEN_QUESTIONS)]
    return "\n\n".join(parts)


class _Citer:
    """``[n]`` markers for a report given numbered sources (none when it was given none).

    Its choices come from a generator of their own, so a report given no numbers is the same text
    it always was for a seed."""

    def __init__(self, numbers: Mapping[str, int], subject: str) -> None:
        self.numbers = numbers
        self.pool = sorted(set(numbers.values()))
        self.rng = random.Random(zlib.crc32(("\n".join(sorted(numbers)) + subject).encode()))

    def page(self, sentence: str, url: str) -> str:
        number = self.numbers.get(url)
        return self._marked(sentence, [number] if number else self._some())

    def general(self, sentence: str) -> str:
        return self._marked(sentence, self._some())

    def _some(self) -> list[int]:
        if not self.pool:
            return []
        return sorted(self.rng.sample(self.pool, k=min(len(self.pool), self.rng.choice((1, 1, 2)))))

    @staticmethod
    def _marked(sentence: str, numbers: list[int]) -> str:
        if not numbers:
            return sentence
        body = sentence.rstrip()
        end = len(body.rstrip(".!?"))
        return f"{body[:end]} [{', '.join(map(str, numbers))}]{body[end:]}"


_NUMBERED_SOURCE = re.compile(r"^\[(\d+)\] .* <(\S+)>\s*$", re.MULTILINE)


def numbered_sources(prompt: str) -> dict[str, int]:
    """URL -> number of the numbered sources a report prompt lists (``[3] Title <url>``)."""
    return {m.group(2): int(m.group(1)) for m in _NUMBERED_SOURCE.finditer(prompt)}


_PAGE_TOPIC = re.compile(r"This article examines (.+?) using the latest")
_RESTATEMENTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"activity grew by (\d+)%", "activity around {np} grew by {0}% over the past year."),
        (r"main drivers cited are cost", "cost and regulatory clarity are the main drivers for {np}."),
        (
            r"survey of (\d+) organisations found that (\d+)%",
            "{1}% of {0} organisations surveyed plan to expand their work on {np} within two years.",
        ),
        (r"pointing to ([a-z ]+)\.", "claims about {np} often outrun the evidence, resting on {0}."),
        (r"fell to about (\d+) per unit in (\d{4})", "prices for {np} fell to about {0} per unit in {1}."),
        (
            r"([A-Z][A-Za-z ]+) accounts for roughly (\d+)%",
            "{0} accounts for roughly {1}% of the market for {np}.",
        ),
        (
            r"to (mature|consolidate|accelerate|stabilise) before (\d{4})",
            "{np} {be} expected to {0} before {1}, with uncertainty about supply and demand.",
        ),
    )
)
"""Page sentences (as ``synthweb`` writes them) and how to say each again about a noun phrase."""


def noun_phrase(words: list[str]) -> str:
    """The words up to the first plural-looking noun among the first four (else the first two)."""
    heads = [i for i, w in enumerate(words[:4]) if _plural(w)]
    end = heads[0] + 1 if heads else 2
    while end < len(words) and words[end - 1].lower() in ("the", "a", "an"):
        end += 1
    return " ".join(words[:end])


def restate(sentence: str, page: Page) -> str | None:
    """A page's sentence said again, grammatically, about the page's subject (None: no pattern fits).

    The synthetic page text joins query words ("sodium-ion batteries displace lithium"); the
    restatement names the subject as a noun phrase and keeps the page's figures, so the cited
    text still supports it.
    """
    topic = _PAGE_TOPIC.search(page.text)
    if topic is None:
        return None
    words = topic.group(1).split()
    phrase = noun_phrase(words)
    be = "are" if _plural(phrase.split()[-1]) else "is"
    for pattern, template in _RESTATEMENTS:
        match = pattern.search(sentence)
        if match:
            return template.format(*match.groups(), np=phrase, be=be)
    return None
