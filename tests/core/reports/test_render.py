"""An agent's report: its whole conversation's sources, numbered once, under one title."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from core.reports.citethrough import PriorSources
from core.reports.parse import parse_report
from core.reports.render import AgentMeta, build_report, split_own_sources
from tests.core.reports.conversation import assistant, page, research_turn, text, user

META = AgentMeta(id="market", title="Market and costs", layer=1, model="m", turns=3, searches=2, cost_usd=0.5)
LINK = re.compile(r"\[\[(\d+)\]\]\((\S+?)\)")


def report_of(messages: list, report_from: int, prior: PriorSources | None = None) -> str:
    return build_report(agent=META, messages=messages, body_messages=messages[report_from:], prior=prior)


def test_a_report_turn_that_cites_nothing_still_lists_every_page_the_conversation_cited() -> None:
    pages = [page(i) for i in range(1, 6)]
    messages = [
        user("brief"),
        research_turn("s1", pages[:3], cite=[pages[0], pages[2]]),
        user("go on"),
        research_turn("s2", pages[3:], cite=[pages[4]]),
        user("write your report"),
        assistant(text("# Report\n\nSodium-ion is cheaper to make. Grid buyers are cautious.")),
    ]
    report = report_of(messages, 4)
    parsed = parse_report(report)
    assert [s.url for s in parsed.sources] == [pages[0]["url"], pages[2]["url"], pages[4]["url"]]
    assert [s.title for s in parsed.sources] == ["Page 1", "Page 3", "Page 5"], "titles from the search"
    assert [url for url, _ in parsed.also] == [pages[1]["url"], pages[3]["url"]]
    assert "Sodium-ion is cheaper to make." in parsed.body
    assert [line for line in report.splitlines() if line.startswith("# ")] == ["# Market and costs"]


def test_inline_citations_are_numbered_in_reading_order_and_point_at_their_sources() -> None:
    pages = [page(i) for i in range(1, 4)]
    messages = [
        user("brief"),
        research_turn("s1", pages, cite=[pages[0]]),
        user("report"),
        assistant(text("Third says so.", pages[2]), text(" First agrees.", pages[0])),
    ]
    report = report_of(messages, 2)
    body = parse_report(report).body
    assert LINK.findall(body) == [("1", pages[2]["url"]), ("2", pages[0]["url"])]


def test_labels_of_earlier_reports_resolve_to_their_original_urls() -> None:
    earlier = report_of([user("b"), research_turn("s1", [page(1), page(2)], cite=[page(1), page(2)])], 0)
    prior = PriorSources.of({"market": earlier})
    messages = [
        user("brief"),
        assistant(text("Prices fell [market:2], and stayed low [market:1, market:9].")),
    ]
    report = build_report(agent=META, messages=messages, prior=prior)
    parsed = parse_report(report)
    assert [s.url for s in parsed.sources] == [page(2)["url"], page(1)["url"]]
    assert "[market:9]" in parsed.body, "an unknown label stays visible, it is not invented"


def test_the_models_own_sources_list_is_replaced_by_ours() -> None:
    pages = [page(1), page(2)]
    own = (
        "## Findings\n\nPrices fell.\n\n## Sources\n\n- [Page 2](https://news.example/page-2)\n"
        "- [Made up](https://nowhere.example/x)\n\n## Outlook\n\nUp."
    )
    messages = [user("b"), research_turn("s1", pages, cite=[pages[0]]), user("r"), assistant(text(own))]
    report = report_of(messages, 2)
    assert report.count("## Sources") == 1 and "## Outlook" in report
    assert "nowhere.example" not in report, "a URL no search returned is not carried into the report"
    assert [s.url for s in parse_report(report).sources] == [pages[1]["url"], pages[0]["url"]]


def test_split_own_sources_keeps_the_sections_after_it() -> None:
    body, own = split_own_sources("Text.\n\n**Sources:**\n- a\n\n## Next\n\nMore.")
    assert "## Next" in body and "More." in body and "- a" in own


conversations = st.lists(
    st.tuples(st.lists(st.integers(0, 15), min_size=0, max_size=6), st.lists(st.integers(0, 15), max_size=4)),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(conversations, st.lists(st.integers(0, 15), max_size=4), st.booleans())
def test_every_cited_page_is_a_source_once_and_every_link_points_at_its_number(
    turns: list[tuple[list[int], list[int]]], report_cites: list[int], announce: bool
) -> None:
    messages: list = [user("brief")]
    returned: list[str] = []
    cited: list[str] = []
    for i, (found, cite) in enumerate(turns):
        pages = [page(n) for n in dict.fromkeys(found)]
        chosen = [p for p in pages if int(p["url"].rsplit("-", 1)[1]) in cite]
        messages += [research_turn(f"s{i}", pages, cite=chosen), user("next")]
        returned += [p["url"] for p in pages]
        cited += [p["url"] for p in chosen]
    seen = {u for u in returned}
    final = [page(n) for n in report_cites if page(n)["url"] in seen]
    blocks = [text("Let me search for more.")] if announce else []
    blocks += [text(f"Claim {p['title']}.", p) for p in final] or [text("No new citations.")]
    messages.append(assistant(*blocks))
    report = report_of(messages, len(messages) - 1)
    parsed = parse_report(report)
    numbers = {s.number: s.url for s in parsed.sources}
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    assert set(numbers.values()) == set(cited) | {p["url"] for p in final}
    assert len(numbers) == len(set(numbers.values()))
    for number, url in LINK.findall(parsed.body):
        assert numbers[int(number)] == url
    also = [url for url, _ in parsed.also]
    assert set(also) == set(returned) - set(numbers.values()) and len(also) == len(set(also))
    assert sum(line.startswith("# ") for line in report.splitlines()) == 1
    assert report.count("## Sources") == (1 if numbers else 0)


def test_a_recorded_real_answer_keeps_its_citations_and_lists_every_result() -> None:
    fixture = Path(__file__).parents[2] / "fixtures" / "anthropic-recorded" / "web-search-non-streaming.json"
    message = json.loads(fixture.read_text())[0]["response"]["body"]
    messages = [
        user("What is the weather in San Francisco?"),
        {"role": "assistant", "content": message["content"]},
    ]
    report = parse_report(build_report(agent=META, messages=messages))
    results = [
        r["url"] for b in message["content"] if b["type"] == "web_search_tool_result" for r in b["content"]
    ]
    cited = {c["url"] for b in message["content"] if b["type"] == "text" for c in b.get("citations") or []}
    assert {s.url for s in report.sources} == cited and cited
    assert {url for url, _ in report.also} == set(results) - cited
    assert "showers" in report.body and LINK.search(report.body)
