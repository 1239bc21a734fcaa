"""The one token approximation, applied consistently to every part of a prompt."""

from __future__ import annotations

from core.simulator.tokens import WEB_SEARCH_TOOL_OVERHEAD, count_block, count_text, prompt_segments


def test_text_counts_a_token_per_four_characters_rounded_up() -> None:
    assert [count_text(t) for t in ("", "abc", "abcd", "abcde")] == [0, 1, 1, 2]


def test_search_results_count_their_encrypted_content_but_not_their_metadata() -> None:
    result = {"type": "web_search_result", "url": "https://a.example/" + "x" * 400, "title": "t" * 400,
              "encrypted_content": "e" * 800, "page_age": None}  # fmt: skip
    block = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [result]}
    assert count_block(block) == 200


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
