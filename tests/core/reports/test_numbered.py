"""The report turn's numbered sources: the list it is given, and its ``[n]`` markers rendered as links."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.reports import numbered
from core.reports.parse import parse_report
from core.reports.render import CONTINUE_PROMPT, AgentMeta, build_report
from tests.core.reports.conversation import assistant, page, research_turn, text, user

META = AgentMeta(id="market", title="Market and costs", layer=1)
LINK = re.compile(r"\[\[(\d+)\]\]\((\S+?)\)")


def conversation(answer: str) -> list[dict]:
    pages = [page(i) for i in range(1, 5)]
    research = [user("brief"), research_turn("s1", pages, cite=[pages[2], pages[0]])]
    return [*research, user(numbered.with_sources("Write your report.", research)), assistant(text(answer))]


def test_the_report_prompt_lists_cited_pages_first_then_the_rest_numbered_with_the_instruction() -> None:
    prompt = conversation("x")[2]["content"][0]["text"]
    assert numbered.HEADING in prompt and "[3, 7]" in prompt
    given = numbered.given(prompt)
    assert [given[n].url for n in sorted(given)] == [page(i)["url"] for i in (3, 1, 2, 4)]
    assert given[1].title == "Page 3"  # the title the search gave
    assert numbered.with_sources("Write your report.", [user("brief")]) == "Write your report."


TOO_LONG = "https://x.example/" + "a" * 400


def long_page(n: int) -> dict:
    """A page whose title would take more than its line's share: quotes, escapes, another script."""
    url = f"https://journal.example/{'archive/' * 30}page-{n}"
    return {**page(n), "url": url, "title": f'"Batteries" \\ 電池の市場 {n} ' + "ナトリウム " * 40}


def test_the_list_grows_by_no_more_than_the_bound_held_for_the_searches_that_add_to_it() -> None:
    """The report hold counts the list as it is now, exactly, plus growth() for the call's searches."""
    first = [page(i) for i in range(1, 5)]
    messages = [user("brief")]
    now, count = numbered.listing_bytes(messages)
    assert (now, count) == (0, 0)
    steps = [
        ("s1", first, [first[1]]),
        ("s2", [long_page(i) for i in range(5, 15)], [first[3]]),  # a page cited later moves up
        ("s3", [*(long_page(i) for i in range(15, 25)), {**page(99), "url": TOO_LONG}], []),
    ]
    for tool_id, pages, cite in steps:
        messages.append(research_turn(tool_id, pages, cite=cite))
        grown, listed = numbered.listing_bytes(messages)
        assert listed > count and grown <= now + numbered.growth(count, 1), tool_id
        assert grown == numbered.sent_bytes(numbered.with_sources("", messages))  # exact: what is sent
        now, count = grown, listed
    assert count == 24  # the 400-byte URL is not listed
    titles = [s.title for s in numbered.listed(messages)]
    assert all(numbered.sent_bytes(t) <= numbered.TITLE_BYTES for t in titles) and titles[-1].endswith("…")


def test_a_list_longer_than_its_room_leaves_out_its_last_uncited_pages() -> None:
    pages = [long_page(i) for i in range(1, 31)]  # thirty results: more than one search's share
    messages = [user("brief"), research_turn("s1", pages, cite=[pages[20]])]
    room = numbered.growth(0, 1)
    prompt = numbered.with_sources("Write your report.", messages, room)
    given = numbered.given(prompt)
    assert numbered.sent_bytes(prompt) - numbered.sent_bytes("Write your report.") <= room
    assert numbered.RESULTS_PER_SEARCH <= len(given) < 30 and given[1].url == pages[20]["url"]
    assert len(numbered.given(numbered.with_sources("Write your report.", messages))) == 30


def test_markers_become_links_to_the_sources_they_were_given_numbered_in_reading_order() -> None:
    messages = conversation("Prices fell [2]. Demand grew [1, 4]. Costs vary [2-3].")
    report = build_report(agent=META, messages=messages, body_messages=messages[2:])
    body = parse_report(report).body
    links = LINK.findall(body)
    assert [url for _, url in links] == [page(i)["url"] for i in (1, 3, 4, 1, 2)]
    sources = {s.number: s.url for s in parse_report(report).sources}
    assert all(sources[int(n)] == url for n, url in links)
    assert "[2]" not in body.replace("[[2]]", "")


def test_a_number_the_report_was_not_given_stays_visibly_unresolved() -> None:
    messages = conversation("Prices fell [2, 9]. Nobody said [12].")
    body = parse_report(build_report(agent=META, messages=messages, body_messages=messages[2:])).body
    assert "[9]" in body and "[12]" in body and LINK.findall(body) == [("1", page(1)["url"])]


def test_markers_are_not_links_reference_definitions_or_labels() -> None:
    found = [
        m.group(1) for m in numbered.MARKERS.finditer("a [1] b [[2]](u) c [3](u) d\n[4]: u e \\[5] [x:6]")
    ]
    assert found == ["1"]
    assert numbered.marker_numbers("3, 5-7; 9") == [3, 5, 6, 7, 9]


def test_an_answer_cut_by_max_tokens_is_joined_where_it_was_cut() -> None:
    """No blank line splits a word or a table row: the rest follows the cut text directly."""
    messages = [
        user("write your report"),
        assistant(text("| Market | Share |\n|---|---|\n| China | 4")),
        user(CONTINUE_PROMPT),
        assistant(text("2% |\n| India | 1")),
        user(CONTINUE_PROMPT),
        assistant(text("1% |\n\nSodium-ion cells are cheap")),
        user(CONTINUE_PROMPT),
        assistant(text("er to make.")),
    ]
    body = parse_report(build_report(agent=META, messages=messages, body_messages=messages)).body
    assert "| China | 42% |\n| India | 11% |" in body and "cheaper to make." in body


@settings(max_examples=150)
@given(data=st.data())
def test_sources_read_call_by_call_equal_the_whole_conversation_read_at_once(data: st.DataObject) -> None:
    """Each call sizes the report list from what earlier calls read (numbered.SourcesSoFar): the
    same list as reading the whole conversation, whatever happens to its history in between."""
    pages = [page(i, site) for i in range(6) for site in ("a.example", "b.example")]
    some_pages = st.lists(st.sampled_from(pages), max_size=4)
    sofar, messages = numbered.SourcesSoFar(), [user("brief")]
    for step in range(data.draw(st.integers(1, 12))):
        action = data.draw(st.sampled_from(["turn", "user", "extend last", "take back", "compact"]))
        if action == "turn":
            found = data.draw(some_pages)
            messages.append(
                research_turn(f"s{step}", found, cite=data.draw(st.lists(st.sampled_from(found or pages))))
            )
        elif action == "user":
            messages.append(user(f"continue {step}"))
        elif action == "extend last" and messages[-1]["role"] == "assistant":
            messages[-1]["content"].append(text("more", *data.draw(some_pages)))  # a continuation
        elif action == "take back" and len(messages) > 1:
            messages.pop()
        elif action == "compact":
            messages = [user("brief"), *[dict(m) for m in messages[-2:]]]
        whole = numbered.listing_bytes(messages)
        assert numbered.listing_bytes(messages, sofar) == whole
