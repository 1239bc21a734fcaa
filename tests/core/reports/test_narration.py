"""Narration that only announces a search is not part of a report; findings always are."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.reports.narration import announces, strip_narration
from tests.core.reports.conversation import page, results, search, text

ANNOUNCEMENTS = [
    "Let me search for sodium-ion prices in 2026.",
    "I'll look into the supply chain, starting with the most recent sources.",
    "To answer this, I'll search for up-to-date information on cathodes.",
    "Next, I'll look at grid storage tenders.",
    "I'll search for patent filings to cross-check this.",
    "Now let me check what the regulators say.",
    "I need to verify these figures.",
]
FINDINGS = [
    "Prices fell 18% year on year.",
    "Let me be clear: the evidence is thin.",
    "I will note that the data covers only China.",
    "Analysts expect consolidation before 2030.",
    "The search for cheaper cathodes has driven most of the research.",
]


def test_announcements_are_recognised_and_findings_are_not() -> None:
    assert all(announces(s) for s in ANNOUNCEMENTS)
    assert not any(announces(s) for s in FINDINGS)


def test_an_announcement_before_a_search_is_dropped_and_the_findings_after_it_kept() -> None:
    blocks = [
        text(ANNOUNCEMENTS[0]),
        search("s1", "q"),
        results("s1", [page(1)]),
        text("Prices fell.", page(1)),
    ]
    kept = strip_narration(blocks)
    assert [b["type"] for b in kept] == ["server_tool_use", "web_search_tool_result", "text"]
    assert kept[-1]["text"] == "Prices fell."


def test_findings_in_the_same_block_as_an_announcement_are_kept() -> None:
    blocks = [text("Prices fell 18% in 2025. Let me look for more detail on tenders."), search("s1", "q")]
    assert strip_narration(blocks)[0]["text"].strip() == "Prices fell 18% in 2025."


def test_cited_text_before_a_search_is_never_dropped() -> None:
    blocks = [text("I'll search for more, but prices fell.", page(1)), search("s1", "q")]
    assert strip_narration(blocks) == blocks


@given(st.lists(st.sampled_from(ANNOUNCEMENTS + FINDINGS), min_size=1, max_size=8))
def test_a_turn_of_only_text_is_kept_whole(sentences: list[str]) -> None:
    blocks = [text(s + " ") for s in sentences]
    assert strip_narration(blocks) == blocks


@given(st.lists(st.tuples(st.sampled_from(ANNOUNCEMENTS + FINDINGS), st.booleans()), min_size=1, max_size=10))
def test_every_finding_survives_and_no_announcement_before_a_search_does(
    plan: list[tuple[str, bool]],
) -> None:
    blocks = []
    for i, (sentence, then_search) in enumerate(plan):
        blocks.append(text(sentence))
        if then_search:
            blocks.append(search(f"s{i}", "q"))
    kept = [b["text"] for b in strip_narration(blocks) if b["type"] == "text"]
    expected = [s for s, then_search in plan if s in FINDINGS or not then_search]
    assert kept == expected
    assert len([b for b in strip_narration(blocks) if b["type"] == "server_tool_use"]) == sum(
        s for _, s in plan
    )
