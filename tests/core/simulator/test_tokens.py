"""The tokenizer model: density by script, exact additivity, and one count for every part of a prompt."""

from __future__ import annotations

import pytest
from anthropic import BadRequestError
from hypothesis import given
from hypothesis import strategies as st

from core.simulator import SimulatorSettings
from core.simulator.tokens import (
    UNITS_PER_TOKEN,
    WEB_SEARCH_TOOL_OVERHEAD,
    char_units,
    count_block,
    count_text,
    prompt_segments,
    text_units,
    truncate_to_tokens,
)
from tests.core.simulator.conftest import MODEL, StartSimulator, request, sdk

ENGLISH = (
    "The committee reviewed the annual report and agreed that the new storage projects should proceed "
    "once the grid operator confirms the connection dates for each of the sites."
)
CHINESE = "钠离子电池在电网储能中的应用正在迅速增长，成本下降和政策支持是主要的推动因素。"
JAPANESE = "ナトリウムイオン電池は、送電網の蓄電用途で急速に普及しつつあります。"
DIGITS = "3.14159 2718281828 1,234,567.89 2026-11-30 0x7fff 65535 42 1e-9"
CODE = 'def f(x: int) -> dict[str, int]:\n    return {"a": x ** 2, "b": [x, x + 1]}  # sq\n'
URL = "https://data.open-statistics.example/datasets/sodium-ion-2026?region=eu&page=3#table-2"


def chars_per_token(text: str) -> float:
    return len(text) / count_text(text)


def test_english_prose_runs_at_about_four_characters_per_token() -> None:
    assert 3.7 <= chars_per_token(ENGLISH) <= 4.0
    assert [count_text(t) for t in ("", "abc", "abcd", "abcde")] == [0, 1, 1, 2]


def test_chinese_and_japanese_cost_about_one_token_per_character() -> None:
    for text in (CHINESE, JAPANESE):
        assert 0.9 <= chars_per_token(text) <= 1.1


def test_digits_code_and_urls_are_denser_than_english_words() -> None:
    english = chars_per_token(ENGLISH)
    for text in (DIGITS, CODE, URL):
        assert chars_per_token(text) < 0.85 * english, text


def test_other_alphabets_and_emoji_sit_between_english_and_beyond_cjk() -> None:
    russian = "Натрий-ионные аккумуляторы становятся дешевле с каждым годом"
    assert 1.7 <= chars_per_token(russian) <= 2.6
    assert count_text("🙂🚀") >= 4


@given(st.text())
def test_the_fast_ascii_path_agrees_with_the_per_character_costs(text: str) -> None:
    assert text_units(text) == sum(char_units(c) for c in text)


@given(st.text(), st.text())
def test_counts_are_additive_up_to_rounding(a: str, b: str) -> None:
    whole = count_text(a + b)
    assert max(count_text(a), count_text(b)) <= whole <= count_text(a) + count_text(b)
    assert text_units(a + b) == text_units(a) + text_units(b)


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_truncation_gives_the_longest_prefix_within_the_budget(text: str, tokens: int) -> None:
    cut = truncate_to_tokens(text, tokens)

    assert text.startswith(cut) and count_text(cut) <= tokens
    if cut != text:
        assert text_units(text[: len(cut) + 1]) > tokens * UNITS_PER_TOKEN


def test_search_results_count_their_encrypted_content_but_not_their_metadata() -> None:
    result = {"type": "web_search_result", "url": "https://a.example/" + "x" * 400, "title": "t" * 400,
              "encrypted_content": "e" * 800, "page_age": None}  # fmt: skip
    block = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [result]}
    assert count_block(block) == 200


def test_tool_input_counts_its_script_not_its_json_escapes() -> None:
    chinese = count_block({"type": "tool_use", "id": "t", "name": "f", "input": {"q": CHINESE}})
    assert chinese >= len(CHINESE)  # not the six-character \\uXXXX escapes, which would count less per char
    assert chinese <= len(CHINESE) + 8


def test_a_prompt_is_the_sum_of_its_segments_in_api_order() -> None:
    body = {
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "system": "s" * 40,
        "messages": [
            {"role": "user", "content": "u" * 80},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        ],
    }
    segments = prompt_segments(body)

    assert [s.message_index for s in segments] == [None, None, 0, 1]
    assert segments[0].tokens > WEB_SEARCH_TOOL_OVERHEAD and segments[1].tokens == 10
    assert segments[2].tokens == 20 + 3  # text plus the message overhead


def test_cache_markers_do_not_change_a_blocks_identity() -> None:
    plain = prompt_segments({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    marked = prompt_segments(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
                }
            ]
        }
    )
    assert plain[0].canonical == marked[0].canonical and marked[0].cache_control == {"type": "ephemeral"}


async def test_usage_count_tokens_and_the_context_window_use_the_same_script_aware_count(
    start_simulator: StartSimulator,
) -> None:
    client = sdk(await start_simulator(SimulatorSettings(context_window=3_000)))
    chinese = CHINESE * 100  # about 4,000 characters: past the window in Chinese, far within in English
    english = ("x" * len(chinese)).replace("xxxxx", "word ")
    counted = {
        name: (await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": text}]))
        for name, text in (("zh", chinese), ("en", english))
    }
    assert counted["zh"].input_tokens > 3.5 * counted["en"].input_tokens

    answer = await client.messages.create(**request(english, tools=[], max_tokens=50))
    assert answer.usage.input_tokens == counted["en"].input_tokens
    with pytest.raises(BadRequestError, match=r"prompt is too long: \d+ tokens > 3000 maximum"):
        await client.messages.create(**request(chinese, tools=[], max_tokens=50))
