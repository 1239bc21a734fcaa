"""Requests shrink to fit: the largest call whose true worst case fits what a cap leaves, down to
floors; below them the agent stops researching and its held report still fits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.budget.ledger import (
    REPORT_CACHE_WRITE,
    BudgetExhausted,
    BudgetLedger,
    CacheWrite,
    CallRequest,
    worst_case,
)
from core.budget.pricing import PriceTable
from core.budget.sizing import (
    REPORT_OUTPUT_FLOOR,
    RESEARCH_OUTPUT_FLOOR,
    Bounds,
    Size,
    largest,
    research_size,
)
from core.config.model import BudgetSettings
from core.usage import TokenUsage

PRICES = PriceTable.default()
SONNET = "claude-sonnet-5"
SEARCH = 10_000


def book(cap: float, **caps: float | int) -> BudgetLedger:
    settings_ = BudgetSettings(max_cost_usd=cap, reserve_for_later_layers=0.0, **caps)
    return BudgetLedger(settings_, PRICES, n_layers=1, search_input_tokens=SEARCH)


def research(
    agent: str = "a", *, input_tokens: int = 8_000, max_tokens: int = 4_096, searches: int = 5
) -> CallRequest:
    return CallRequest(
        agent_id=agent,
        layer=1,
        model=SONNET,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        max_searches=searches,
        min_searches=1,
        report_input_tokens=input_tokens + 200,
        min_max_tokens=RESEARCH_OUTPUT_FLOOR,
        min_report_tokens=REPORT_OUTPUT_FLOOR,
    )


def report(agent: str = "a", *, input_tokens: int, max_tokens: int = 4_096) -> CallRequest:
    return CallRequest(
        agent_id=agent,
        layer=1,
        model=SONNET,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        max_searches=0,
        report=True,
        purpose="report",
        min_max_tokens=REPORT_OUTPUT_FLOOR,
    )


def cost(r: CallRequest, size: Size) -> float:
    """The call at ``size`` with the report it holds: what must fit."""
    need = worst_case(PRICES, SONNET, input_tokens=r.input_tokens, max_tokens=size.max_tokens,
                      max_searches=size.searches, search_input_tokens=SEARCH)  # fmt: skip
    assert r.report_input_tokens is not None
    growth = r.report_growth[min(size.searches, len(r.report_growth) - 1)] if r.report_growth else 0
    grown = r.report_input_tokens + growth + size.max_tokens + size.searches * SEARCH
    hold = worst_case(PRICES, SONNET, input_tokens=grown, max_tokens=size.report_tokens, max_searches=0,
                      cache_write=REPORT_CACHE_WRITE)  # fmt: skip
    return need.usd + hold.usd


FLOOR = Size(RESEARCH_OUTPUT_FLOOR, 1, REPORT_OUTPUT_FLOOR)


class TestLargest:
    @given(low=st.integers(0, 50), span=st.integers(0, 5_000), data=st.data())
    def test_it_finds_the_threshold_of_a_monotone_predicate(
        self, low: int, span: int, data: st.DataObject
    ) -> None:
        high = low + span
        threshold = data.draw(st.integers(low - 1, high))
        found = largest(lambda n: n <= threshold, low, high)
        assert found == (None if threshold < low else threshold)

    def test_the_full_size_costs_one_check(self) -> None:
        asked: list[int] = []

        def fits(n: int) -> bool:
            asked.append(n)
            return True

        assert largest(fits, 1, 4_096) == 4_096
        assert asked == [4_096]


class TestOrder:
    def bounds(self) -> Bounds:
        return Bounds.of(max_tokens=4_096, max_searches=5, min_searches=1, min_tokens=512,
                         report_tokens=4_096, min_report_tokens=1_024)  # fmt: skip

    def test_searches_go_first_then_max_tokens_then_the_report_hold(self) -> None:
        # A budget in "units": each search 10, each 100 output tokens 1, each 100 report tokens 1.
        def over(room: int) -> Callable[[Size], str | None]:
            def problem(size: Size) -> str | None:
                used = size.searches * 10 + size.max_tokens // 100 + size.report_tokens // 100
                return "over" if used > room else None

            return problem

        assert research_size(self.bounds(), over(500))[0] == Size(4_096, 5, 4_096)
        assert research_size(self.bounds(), over(110))[0] == Size(4_096, 3, 4_096)
        assert research_size(self.bounds(), over(60))[0] == Size(1_099, 1, 4_096)
        assert research_size(self.bounds(), over(30))[0] == Size(512, 1, 1_599)
        size, problem = research_size(self.bounds(), over(20))
        assert (size, problem) == (Size(512, 1, 1_024), "over")


class TestLedger:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        room=st.floats(0.0, 1.5),
        input_tokens=st.integers(0, 60_000),
        max_tokens=st.sampled_from([256, 1_024, 4_096, 16_000]),
        searches=st.integers(0, 8),
    )
    def test_a_call_is_sized_to_what_is_left_and_its_worst_case_fits(
        self, room: float, input_tokens: int, max_tokens: int, searches: int
    ) -> None:
        spent = 0.25
        ledger = book(spent + room)
        prior = ledger.reserve(
            agent_id="z", layer=1, model=SONNET, input_tokens=0, max_tokens=25_000, max_searches=0
        )
        ledger.settle(prior, TokenUsage(output_tokens=25_000))
        assert ledger.spent_usd == pytest.approx(spent)
        r = research(input_tokens=input_tokens, max_tokens=max_tokens, searches=searches)
        floor = Bounds.of(max_tokens=max_tokens, max_searches=searches, min_searches=1,
                          min_tokens=RESEARCH_OUTPUT_FLOOR, report_tokens=None,
                          min_report_tokens=REPORT_OUTPUT_FLOOR)  # fmt: skip
        smallest = Size(floor.min_tokens, floor.min_searches, floor.min_report_tokens)
        try:
            granted = ledger.reserve_request(r)
        except BudgetExhausted as stop:
            assert cost(r, smallest) > room  # refused only below the floor
            assert stop.needed == pytest.approx(cost(r, smallest)) and stop.left == pytest.approx(room)
            return
        assert cost(r, smallest) <= room + 1e-12 or searches == 0
        # What is sent is what was reserved: its true worst case, with the report held, fits.
        sent = worst_case(PRICES, SONNET, input_tokens=input_tokens, max_tokens=granted.max_tokens,
                          max_searches=granted.max_searches, search_input_tokens=SEARCH)  # fmt: skip
        assert granted.usd == pytest.approx(sent.usd)
        assert ledger.spent_usd + ledger.reserved_usd <= spent + room + 1e-9
        assert floor.min_tokens <= granted.max_tokens <= max_tokens
        assert min(1, searches) <= granted.max_searches <= searches
        assert ledger.worst_usage(granted).output_tokens == granted.max_tokens

    def test_below_the_floor_research_stops_and_the_held_report_is_still_written(self) -> None:
        ledger = book(0.40)
        first = ledger.reserve_request(research(input_tokens=8_000))
        assert (first.max_tokens, first.max_searches) == (4_096, 5) or first.usd < 0.40
        ledger.settle(first, TokenUsage(input_tokens=20_000, output_tokens=1_500, web_search_requests=2))
        grown = 8_000 + 20_000 + 1_500
        with pytest.raises(BudgetExhausted) as refused:
            while True:  # research until even the smallest call does not fit
                call = ledger.reserve_request(research(input_tokens=grown))
                assert call.max_tokens >= RESEARCH_OUTPUT_FLOOR and call.max_searches >= 1
                ledger.settle(call, TokenUsage(input_tokens=3_000, output_tokens=call.max_tokens,
                                               web_search_requests=1))  # fmt: skip
                grown += 3_000 + call.max_tokens
        assert refused.value.cap == "usd" and refused.value.needed is not None
        assert refused.value.left is not None and refused.value.needed > refused.value.left
        written = ledger.reserve_request(report(input_tokens=grown + 200))
        assert written.max_tokens >= REPORT_OUTPUT_FLOOR
        ledger.settle(written, TokenUsage(input_tokens=grown, output_tokens=written.max_tokens))
        assert ledger.spent_usd <= 0.40

    def test_the_report_hold_grows_by_what_the_granted_searches_add_to_the_report_prompt(self) -> None:
        """The report prompt lists the sources the call's searches may add: the hold holds that
        growth for the searches granted, so a call shrunk to fewer searches holds less."""
        growth = (0, 5_000, 10_000, 15_000, 20_000, 25_000)
        r = replace(research(), report_growth=growth)
        roomy = book(10.0)
        granted = roomy.reserve_request(r)
        assert granted.max_searches == 5
        assert roomy.held_usd("a") == pytest.approx(cost(r, Size(4_096, 5, 4_096)) - granted.usd)
        for cap in (0.60, 0.45, 0.35):
            tight = book(cap)
            call = tight.reserve_request(r)
            size = Size(call.max_tokens, call.max_searches, 4_096)
            assert 1 <= call.max_searches < 5
            assert tight.held_usd("a") == pytest.approx(cost(r, size) - call.usd), cap
            assert tight.reserved_usd <= cap + 1e-9
            without = book(cap).reserve_request(research())  # the growth costs searches, never the cap
            assert without.max_searches >= call.max_searches

    def test_a_report_is_sized_to_its_hold_when_the_caps_have_no_room_beside_it(self) -> None:
        ledger = book(0.20)
        held = ledger.reserve_request(research(input_tokens=2_000, max_tokens=4_096, searches=1))
        ledger.settle(held, TokenUsage(input_tokens=2_000, output_tokens=100))
        hold = ledger.held_usd("a")
        assert hold > 0
        # The report's own worst case at max_tokens may exceed the hold; it shrinks to fit it or the cap.
        written = ledger.reserve_request(report(input_tokens=2_000 + 200 + 4_096 + SEARCH, max_tokens=16_000))
        assert REPORT_OUTPUT_FLOOR <= written.max_tokens <= 16_000
        assert ledger.spent_usd + ledger.reserved_usd <= 0.20 + 1e-9

    def test_a_call_waits_for_room_that_calls_in_flight_will_free_rather_than_shrink(self) -> None:
        ledger = book(1.0)
        other = ledger.reserve_request(research("b", input_tokens=8_000))
        full = research("a", input_tokens=8_000)
        now, _, _ = ledger._fitting(full)
        target, _, problem = ledger._target(full)
        assert now.usd < target.usd, "the room now is smaller than once b's call settles"
        assert problem is not None and problem.reason == "reserved"
        ledger.settle(other, TokenUsage(input_tokens=8_000, output_tokens=500, web_search_requests=1))
        assert ledger._target(full)[2] is None


class TestLastResorts:
    """Without the cache, then without a search: only when the request allows them, only after
    every size with the cache (then with a search) failed, and always at a true worst case."""

    def test_the_cache_goes_after_the_floors_and_the_search_after_the_cache(self) -> None:
        bounds = Bounds.of(max_tokens=4_096, max_searches=5, min_searches=0, min_tokens=512,
                           report_tokens=4_096, min_report_tokens=1_024, uncached=True)  # fmt: skip

        # Units: each search 10, each 100 output or report tokens 1; with the cache, 5 more.
        def over(room: int) -> Callable[[Size], str | None]:
            def problem(size: Size) -> str | None:
                used = size.searches * 10 + size.max_tokens // 100 + size.report_tokens // 100
                return "over" if used + 5 * size.cached > room else None

            return problem

        assert research_size(bounds, over(30))[0] == Size(512, 1, 1_099, cached=True)
        assert research_size(bounds, over(29))[0] == Size(512, 1, 1_499, cached=False)
        assert research_size(bounds, over(24))[0] == Size(512, 0, 1_499, cached=True)
        assert research_size(bounds, over(19))[0] == Size(512, 0, 1_499, cached=False)
        assert research_size(bounds, over(14)) == (Size(512, 0, 1_024, cached=False), "over")
        assert research_size(bounds, over(500))[0] == Size(4_096, 5, 4_096, cached=True)
        # Not allowed: neither last resort is tried.
        kept = Bounds.of(max_tokens=4_096, max_searches=5, min_searches=1, min_tokens=512,
                         report_tokens=4_096, min_report_tokens=1_024)  # fmt: skip
        assert research_size(kept, over(29)) == (Size(512, 1, 1_024, cached=True), "over")

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        room=st.floats(0.001, 1.0),
        input_tokens=st.integers(0, 60_000),
        searches=st.integers(0, 6),
        searchless=st.booleans(),
        ttl=st.sampled_from(["5m", "1h"]),
    )
    def test_a_call_granted_without_the_cache_is_reserved_at_the_plain_input_price(
        self, room: float, input_tokens: int, searches: int, searchless: bool, ttl: CacheWrite
    ) -> None:
        ledger = book(room)
        r = CallRequest(
            agent_id="a", layer=1, model=SONNET, input_tokens=input_tokens, max_tokens=4_096,
            max_searches=searches, min_searches=0 if searchless else 1, cache_write=ttl,
            report_input_tokens=input_tokens + 200, min_max_tokens=RESEARCH_OUTPUT_FLOOR,
            min_report_tokens=REPORT_OUTPUT_FLOOR, cache_optional=True,
        )  # fmt: skip
        try:
            granted = ledger.reserve_request(r)
        except BudgetExhausted:
            last = Size(RESEARCH_OUTPUT_FLOOR, 0 if searchless else min(1, searches), REPORT_OUTPUT_FLOOR)
            assert step_cost(r, last, "none") > room  # refused only when the last resort does not fit
            return
        assert granted.cache_write in (ttl, "none")
        assert min(1, searches) * (not searchless) <= granted.max_searches <= searches
        sent = worst_case(PRICES, SONNET, input_tokens=input_tokens, max_tokens=granted.max_tokens,
                          max_searches=granted.max_searches, search_input_tokens=SEARCH,
                          cache_write=granted.cache_write)  # fmt: skip
        assert granted.usd == pytest.approx(sent.usd)  # what is sent is what was reserved
        worst = ledger.worst_usage(granted)
        if granted.cache_write == "none":
            assert worst.cache_write_5m_tokens == worst.cache_write_1h_tokens == 0
            assert worst.input_tokens == sent.input_tokens  # every prompt token at the plain price
            # It went without the cache only because the floors with it did not fit.
            cached_floor = Size(RESEARCH_OUTPUT_FLOOR, min(1, searches), REPORT_OUTPUT_FLOOR)
            assert step_cost(r, cached_floor, ttl) > room
        assert ledger.spent_usd + ledger.reserved_usd <= room + 1e-9


def step_cost(r: CallRequest, size: Size, cache_write: CacheWrite) -> float:
    """The call at ``size`` and its report held, their input priced as ``cache_write`` allows."""
    need = worst_case(PRICES, SONNET, input_tokens=r.input_tokens, max_tokens=size.max_tokens,
                      max_searches=size.searches, search_input_tokens=SEARCH,
                      cache_write=cache_write)  # fmt: skip
    assert r.report_input_tokens is not None
    grown = r.report_input_tokens + size.max_tokens + size.searches * SEARCH
    hold = worst_case(PRICES, SONNET, input_tokens=grown, max_tokens=size.report_tokens, max_searches=0,
                      cache_write=cache_write)  # fmt: skip
    return need.usd + hold.usd
