"""Streaming text wraps to the pane's width exactly as the whole text would."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from tui.wrap import StreamWrapper, wrap_all

TEXT = (
    "Hello world this is a fairly long sentence that needs wrapping at twenty columns.\n"
    "New para  with  spaces and a verylongwordthatexceedsthewidthofthepane ok"
)


def test_no_line_is_wider_than_the_width_and_no_word_is_split_unless_too_long() -> None:
    wrapped = wrap_all(TEXT, 20)
    assert all(cell_len(line) <= 20 for line in wrapped.split("\n"))
    assert "wrapping at twenty" in wrapped
    assert "verylongwordthatexce\nedsthewidthofthepane" in wrapped


def test_feeding_word_by_word_equals_wrapping_whole() -> None:
    wrapper = StreamWrapper(20)
    streamed = "".join(wrapper.feed(piece) for piece in re.findall(r"\S+\s*", TEXT))
    assert streamed == wrap_all(TEXT, 20)


@given(
    st.lists(st.sampled_from(["alpha ", "be ", "gamma-delta ", "\n", "x" * 30 + " ", "  "]), max_size=40),
    st.integers(min_value=8, max_value=40),
)
def test_streaming_in_whitespace_ended_pieces_is_the_same_as_whole(pieces: list[str], width: int) -> None:
    wrapper = StreamWrapper(width)
    streamed = "".join(wrapper.feed(p) for p in pieces)
    assert streamed == wrap_all("".join(pieces), width)
    assert all(cell_len(line) <= width for line in streamed.split("\n"))


def test_newline_if_needed_starts_a_fresh_line_only_mid_line() -> None:
    wrapper = StreamWrapper(20)
    assert wrapper.newline_if_needed() == ""
    wrapper.feed("abc ")
    assert wrapper.newline_if_needed() == "\n"
    assert wrapper.column == 0
