"""Input bounds no tokenizer can exceed, and the API's count used only where it is tighter."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.api.usage import TokenUsage
from core.budget.bounds import (
    COUNT_WORTH_ASKING,
    SEAM_TOKENS,
    conversation_bound,
    counted_bound,
    grown_bound,
    utf8_bytes,
)
from core.simulator.tokens import count_block, count_text

SCRIPTS = st.sampled_from(
    [
        st.text(alphabet=st.characters(min_codepoint=0x3040, max_codepoint=0x30FF)),  # kana
        st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)),  # CJK
        st.text(alphabet="0123456789{}[]()<>=+-*/_.,;:'\"#&?%$ \n\t"),  # code, numbers, URLs
        st.text(alphabet=st.characters(codec="ascii")),
        st.text(),  # anything, emoji included
    ]
).flatmap(lambda s: s)


@given(text=SCRIPTS)
def test_a_token_is_at_least_one_byte_whatever_the_script(text: str) -> None:
    assert count_text(text) <= utf8_bytes(text)
    block = {"type": "text", "text": text}
    assert count_block(block) <= utf8_bytes(block)


@given(system=SCRIPTS, texts=st.lists(SCRIPTS, max_size=5))
def test_a_conversation_is_bounded_by_its_bytes(system: str, texts: list[str]) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": t}]} for t in texts]
    tokens = count_text(system) + sum(count_block(m["content"][0]) for m in messages)
    assert tokens <= conversation_bound(system, messages)


def test_after_a_call_the_bound_is_what_it_read_and_wrote() -> None:
    usage = TokenUsage(input_tokens=900, cache_read_input_tokens=100, output_tokens=50)
    assert grown_bound(5_000, usage, 10_000) == 1_000 + 50 + SEAM_TOKENS
    # A search loop bills re-reads: the prompt's own bound plus the results allowed caps it.
    reread = TokenUsage(input_tokens=50_000, output_tokens=50, web_search_requests=1)
    assert grown_bound(5_000, reread, 10_000) == 15_000 + 50 + SEAM_TOKENS


class Client:
    def __init__(self, count: int | None = None, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.count, self.error = count, error
        self.messages = self

    async def count_tokens(self, **request: Any) -> Any:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        return SimpleNamespace(input_tokens=self.count)


async def test_the_count_is_asked_only_for_large_prompts_and_only_tightens() -> None:
    client = Client(count=1_000)
    assert await counted_bound(client, "m", "s", [], 500) == 500  # type: ignore[arg-type]
    assert client.calls == []
    big = COUNT_WORTH_ASKING * 4
    assert await counted_bound(client, "m", "s", [], big) == int(1_000 * 1.02) + SEAM_TOKENS  # type: ignore[arg-type]
    assert await counted_bound(Client(count=big * 2), "m", "s", [], big) == big  # type: ignore[arg-type]


async def test_a_failed_count_keeps_the_byte_bound(caplog: pytest.LogCaptureFixture) -> None:
    big = COUNT_WORTH_ASKING * 4
    assert await counted_bound(Client(error=RuntimeError("boom")), "m", "s", [], big) == big  # type: ignore[arg-type]
    assert "count_tokens failed" in caplog.text
