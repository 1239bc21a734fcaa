"""A stream view appends cheaply (no layout), shows the tail, scrolls back on request, stays bounded."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from textual import events
from textual.app import App, ComposeResult
from textual.geometry import Offset, Region
from textual.selection import Selection

from tui.feed import LineBuffer
from tui.widgets.stream_view import StreamView


class ViewApp(App[None]):
    CSS = "StreamView { height: 6; }"

    def __init__(self) -> None:
        super().__init__()
        self.scrolled: list[int] = []

    def compose(self) -> ComposeResult:
        yield StreamView(max_lines=50)

    def on_stream_view_scrolled(self, message: StreamView.Scrolled) -> None:
        self.scrolled.append(message.behind)


def painted(view: StreamView) -> list[str]:
    return [view.render_line(y).text.rstrip() for y in range(view.size.height)]


async def test_fragments_continue_the_last_line_and_newlines_start_new_ones() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        for fragment in ("Sodium", "-ion cells\nare ", "cheaper", "\n\n", "LFP"):
            view.write(fragment)
        await pilot.pause()
        assert list(view.lines) == ["Sodium-ion cells", "are cheaper", "", "LFP"]
        assert painted(view)[:4] == ["Sodium-ion cells", "are cheaper", "", "LFP"]


async def test_it_follows_the_end_of_the_stream() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        view.write("".join(f"line {i}\n" for i in range(20)))
        await pilot.pause()
        assert view.following
        assert painted(view) == [f"line {i}" for i in range(14, 20)]


async def test_writing_repaints_the_view_without_a_layout_of_the_screen() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        await pilot.pause()
        layouts = 0
        refresh_layout = app.screen._refresh_layout

        def counting(*args: object, **kwargs: object) -> None:
            nonlocal layouts
            layouts += 1
            refresh_layout(*args, **kwargs)  # type: ignore[arg-type]

        app.screen._refresh_layout = counting  # type: ignore[method-assign]
        for i in range(30):
            view.write(f"line {i}\n")
            await pilot.pause()
        assert layouts == 0
        assert painted(view)[-1] == "line 29"


async def test_a_growing_last_line_repaints_that_row_only_and_a_new_row_the_whole_view() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        view.write("".join(f"line {i}\n" for i in range(10)) + "open")
        await pilot.pause()
        repaints: list[object] = []
        refresh = view.refresh

        def recording(*regions: Region, **kwargs: bool) -> StreamView:
            repaints.append(regions)
            return refresh(*regions, **kwargs)

        view.refresh = recording  # type: ignore[method-assign]
        view.write(" line grows")
        assert repaints == [(Region(0, view.size.height - 1, view.size.width, 1),)]
        await pilot.pause()
        assert painted(view)[-1] == "open line grows"
        repaints.clear()
        view.write(" and ends\nnext")
        assert repaints == [()]  # every row moved up
        await pilot.pause()
        assert painted(view)[-2:] == ["open line grows and ends", "next"]


async def test_scrolled_back_it_holds_still_while_text_arrives_and_says_how_far_back() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        view.write("".join(f"line {i}\n" for i in range(20)))
        view.focus()
        await pilot.pause()
        await pilot.press("pageup")
        assert not view.following
        held = painted(view)
        assert held[0] == "line 9"
        view.write("".join(f"more {i}\n" for i in range(5)))
        await pilot.pause()
        assert painted(view) == held
        assert app.scrolled[-1] == 10  # 5 lines of the first batch below the window, and 5 new ones
        await pilot.press("end")
        assert view.following
        assert painted(view)[-1] == "more 4"
        assert app.scrolled[-1] == 0


async def test_the_mouse_wheel_scrolls_back_and_forward() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        view.write("".join(f"line {i}\n" for i in range(20)))
        await pilot.pause()
        wheel = {"x": 1, "y": 1, "delta_x": 0, "button": 0, "shift": False, "meta": False, "ctrl": False}
        view.post_message(events.MouseScrollUp(view, delta_y=-1, **wheel))  # type: ignore[arg-type]
        await pilot.pause()
        assert view.top == 11
        view.post_message(events.MouseScrollDown(view, delta_y=1, **wheel))  # type: ignore[arg-type]
        await pilot.pause()
        assert view.following


async def test_lines_are_bounded_and_so_is_the_render_cache() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        for i in range(500):
            view.write(f"line {i}\n")
            if i % 50 == 0:
                await pilot.pause()
        await pilot.pause()
        assert len(view.buffer.lines) <= 50 + LineBuffer.SLACK
        assert view.lines == view.buffer.lines  # short lines: a row each, and only the buffer's
        assert view.lines[-2] == "line 499"
        assert painted(view)[-1] == "line 499"
        assert len(view._cache) <= view.size.height


async def test_selected_text_can_be_copied() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        view.write("Sodium-ion cells\nare cheaper\n")
        await pilot.pause()
        selected = view.get_selection(Selection.from_offsets(Offset(0, 0), Offset(3, 1)))
        assert selected == ("Sodium-ion cells\nare", "\n")


words_st = st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=8), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    words=words_st,
    newline_every=st.integers(min_value=3, max_value=30),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
    first=st.integers(min_value=8, max_value=120),
    second=st.integers(min_value=8, max_value=120),
)
def test_text_written_at_one_width_is_wrapped_whole_at_another(
    words: list[str], newline_every: int, cuts: list[int], first: int, second: int
) -> None:
    text = "".join(w + ("\n" if i % newline_every == newline_every - 1 else " ") for i, w in enumerate(words))
    view = StreamView(max_lines=10_000)
    view._rewrap(first)
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    for start, end in itertools.pairwise(bounds):  # fragments that end mid-word
        view.write(text[start:end])
    view._rewrap(second)
    at_once = StreamView(max_lines=10_000)
    at_once._rewrap(second)
    at_once.write(text)
    assert list(view.lines) == list(at_once.lines)
    assert all(len(row) <= second for row in view.lines)
    shown_words = " ".join(view.lines).split()
    assert shown_words == text.split()  # no word cut in two (every word here fits the width)


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.text(alphabet="abc \n", max_size=40), max_size=60),
    max_lines=st.integers(min_value=1, max_value=12),
    max_chars=st.integers(min_value=10, max_value=200),
    width=st.integers(min_value=8, max_value=30),
)
def test_a_view_kept_in_step_with_its_buffer_equals_one_that_wraps_it_whole(
    pieces: list[str], max_lines: int, max_chars: int, width: int
) -> None:
    """Writes re-wrap only what changed and follow the lines the buffer drops; the rows are those of
    the buffer wrapped at once, whatever the pieces and however often lines were dropped."""
    view = StreamView()
    view.show(LineBuffer(max_lines, max_chars))
    view._rewrap(width)
    for piece in pieces:
        view.write(piece)
    fresh = StreamView()
    fresh.show(view.buffer)
    fresh._rewrap(width)
    assert list(view.lines) == list(fresh.lines)
