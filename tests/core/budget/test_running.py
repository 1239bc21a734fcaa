"""The ledger's running figures equal the same figures added up afresh, whatever the order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.budget.running import BurnWindow, RunningSums

amounts = st.tuples(st.floats(0, 50, allow_nan=False), st.integers(0, 200_000), st.integers(0, 10))


@given(entries=st.lists(amounts, max_size=40), data=st.data())
def test_running_sums_follow_entries_coming_and_going(
    entries: list[tuple[float, int, int]], data: st.DataObject
) -> None:
    sums, live = RunningSums(), []
    for entry in entries:
        sums.add(*entry)
        live.append(entry)
        if live and data.draw(st.booleans()):
            sums.remove(*live.pop(data.draw(st.integers(0, len(live) - 1))))
        assert sums.usd == pytest.approx(sum(e[0] for e in live), abs=1e-9)
        assert (sums.tokens, sums.searches, sums.entries) == (
            sum(e[1] for e in live), sum(e[2] for e in live), len(live),
        )  # fmt: skip
    for entry in list(live):
        sums.remove(*entry)
    assert (sums.usd, sums.tokens, sums.searches) == (0.0, 0, 0)  # exact: no phantom reservation


@given(
    costs=st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0, 100)), max_size=40),
    starts=st.lists(st.floats(0, 120), max_size=10),
)
def test_the_burn_window_holds_the_dollars_settled_since_its_start(
    costs: list[tuple[float, float]], starts: list[float]
) -> None:
    window, at, settled = BurnWindow(), 0.0, []
    moments = iter(sorted(starts))
    start = 0.0
    for usd, gap in costs:
        at += gap
        window.add(at, usd)
        settled.append((at, usd))
        start = max(start, next(moments, start))  # the window's start only moves forward
        expected = sum(u for t, u in settled if t >= start)
        assert window.since(start) == pytest.approx(expected, abs=1e-9)
