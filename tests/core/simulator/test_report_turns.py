"""Report turns that follow the conversation: often uncited, citing earlier reports by label."""

from __future__ import annotations

import random
import re

from anthropic import AsyncAnthropic
from anthropic.types import Message, ServerToolUseBlock, TextBlock
from hypothesis import given, settings
from hypothesis import strategies as st

from core.reports.render import CONTINUE_PROMPT
from core.simulator import synthweb
from core.simulator.prose import cited_pieces, label_sentences, prior_labels, subject_phrase
from core.simulator.responder import UNCITED_REPORT_DIRECTIVE
from tests.core.simulator.conftest import request

QUESTION = "Question: Will sodium-ion batteries displace LFP in grid storage before 2030?"
BRIEF = f"{QUESTION}\n\nYour brief: write the synthesis.\n\n"
EARLIER = (
    '<report agent="market">\n# Market\n\nPrices fell [market:1].\n\nSources (cite them by label):\n\n'
    "[market:1] Prices in 2026 | Market Watch (simulated) <https://www.market-watch.example/a>\n"
    "[market:2] Costs explained | Open Statistics (simulated) <https://data.open-statistics.example/b>\n"
    "</report>\n\n"
    '<report agent="policy">\n# Policy\n\nSources (cite them by label):\n\n'
    "[policy:1] Tenders | Policy Institute (simulated) <https://www.policy-institute.example/c>\n"
    "[policy:4] Subsidies | The Daily Ledger (simulated) <https://news.daily-ledger.example/d>\n"
    "</report>"
)


def report_request(report_prompt: str, brief: str = BRIEF) -> dict:
    messages = [
        {"role": "user", "content": brief},
        {"role": "assistant", "content": [{"type": "text", "text": "Noted."}]},
        {"role": "user", "content": report_prompt},
    ]
    return request(messages=messages)


def texts(message: Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


async def test_the_directive_makes_a_report_turn_search_and_cite_nothing(client: AsyncAnthropic) -> None:
    message = await client.messages.create(**report_request(f"Write your report. {UNCITED_REPORT_DIRECTIVE}"))
    assert not any(isinstance(b, ServerToolUseBlock) for b in message.content)
    assert not any(isinstance(b, TextBlock) and b.citations for b in message.content)
    assert (
        message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 0
    )
    assert "sodium-ion batteries" in texts(message) and message.stop_reason == "end_turn"


async def test_report_turns_often_cite_nothing_and_often_search(client: AsyncAnthropic) -> None:
    uncited = 0
    for i in range(16):
        message = await client.messages.create(**report_request(f"Write your report, version {i}."))
        uncited += not any(isinstance(b, ServerToolUseBlock) for b in message.content)
    assert 3 <= uncited <= 13, uncited


async def test_a_synthesis_cites_the_earlier_reports_by_their_labels(client: AsyncAnthropic) -> None:
    labels = {"[market:1]", "[market:2]", "[policy:1]", "[policy:4]"}
    for prompt in ("Write your report.", f"Write your report. {UNCITED_REPORT_DIRECTIVE}"):
        text = texts(await client.messages.create(**report_request(prompt, BRIEF + EARLIER)))
        assert sum(label in text for label in labels) >= 3, text


def test_labels_are_read_from_the_prompt_as_a_model_would() -> None:
    assert [label for label, _ in prior_labels(EARLIER)] == [
        "[market:1]",
        "[market:2]",
        "[policy:1]",
        "[policy:4]",
    ]


def test_the_subject_is_a_noun_phrase_of_the_question() -> None:
    assert subject_phrase(QUESTION.split(": ", 1)[1]) == "sodium-ion batteries"
    assert subject_phrase("How fast is solar adoption growing in Africa?") == "solar adoption"
    assert subject_phrase("What is the market for heat pumps?") == "the market"
    assert subject_phrase("") == "the topic"


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        [
            "sodium-ion batteries displace lithium overview",
            "heat pumps cold climates outlook",
            "offshore wind costs policy",
            "solid-state electrolytes forecast 2030",
        ]
    ),
    st.integers(0, 2**16),
)
def test_cited_sentences_name_a_noun_phrase_and_keep_the_cited_figures(query: str, seed: int) -> None:
    pages = synthweb.search(query, seed, count=6)
    pieces = cited_pieces(random.Random(seed), pages, 400)
    cited = [(text, cites[0]) for text, cites in pieces if cites]
    assert cited
    for text, citation in cited:
        for figure in re.findall(r"\d+", text):
            assert figure in citation["cited_text"], (text, citation["cited_text"])
    joined = " ".join(text for text, _ in cited)
    assert "associated with displace" not in joined and "batteries displace lithium" not in joined


async def test_an_uncited_report_repeats_what_the_earlier_turns_found(client: AsyncAnthropic) -> None:
    research = await client.messages.create(**request(BRIEF))
    earlier = [b.text.strip() for b in research.content if isinstance(b, TextBlock) and b.citations]
    assert earlier
    params = report_request(f"Write your report. {UNCITED_REPORT_DIRECTIVE}")
    params["messages"][1]["content"] = [b.model_dump(exclude_none=True) for b in research.content]
    message = await client.messages.create(**params)
    text = texts(message)
    assert sum(sentence[1:] in text for sentence in earlier) >= min(2, len(earlier))
    assert not any(isinstance(b, TextBlock) and b.citations for b in message.content)


def test_a_synthesis_draws_on_every_report_it_read_before_citing_one_twice() -> None:
    labels = [(f"[r{r}:{n}]", f"T | Site {r}") for r in range(5) for n in range(1, 30)]
    for seed in range(50):
        text = label_sentences(random.Random(seed), labels, "the topic", 6)
        reports = set(re.findall(r"\[(r\d):\d+\]", text))
        assert len(reports) == 5, text


NUMBERED = (
    "Write your report.\n\nSources you can cite, numbered: After each claim, write the number of the "
    "source that supports it in brackets.\n\n"
    "[1] Prices in 2026 | Market Watch (simulated) <https://www.market-watch.example/a>\n"
    "[2] Costs explained | Open Statistics (simulated) <https://data.open-statistics.example/b>\n"
    "[3] Tenders | Policy Institute (simulated) <https://www.policy-institute.example/c>"
)


def no_search_report(prompt: str, **overrides: object) -> dict:
    params = report_request(prompt)
    params.pop("tools")  # as the product sends a report turn: it cannot search
    params.update(overrides)
    return params


async def test_a_report_given_numbered_sources_cites_them_inline_by_number(client: AsyncAnthropic) -> None:
    text = texts(await client.messages.create(**no_search_report(NUMBERED)))
    cited = {int(n) for group in re.findall(r"\[(\d+(?:, \d+)*)\]", text) for n in group.split(", ")}
    assert cited and cited <= {1, 2, 3}, text
    paragraphs = [p for p in text.split("\n\n") if len(p.split()) > 8 and not p.startswith(("#", "-"))]
    assert all(re.search(r"\[\d", p) for p in paragraphs), paragraphs
    uncited = texts(
        await client.messages.create(**no_search_report(f"{NUMBERED}\n{UNCITED_REPORT_DIRECTIVE}"))
    )
    assert not re.search(r"\[\d+\]", uncited)


async def test_a_report_cut_by_max_tokens_is_continued_from_where_it_stopped(client: AsyncAnthropic) -> None:
    """As a model asked to continue: the rest of the same report, not a new one."""
    whole = await client.messages.create(**no_search_report(NUMBERED))
    assert whole.stop_reason == "end_turn"
    params = no_search_report(NUMBERED, max_tokens=60)
    parts: list[str] = []
    for _ in range(30):
        message = await client.messages.create(**params)
        parts.append(texts(message))
        if message.stop_reason != "max_tokens":
            break
        params["messages"] = [
            *params["messages"],
            {"role": "assistant", "content": [{"type": "text", "text": parts[-1]}]},
            {"role": "user", "content": CONTINUE_PROMPT},
        ]
    assert len(parts) > 2 and "".join(parts) == texts(whole)
