"""The ledger: reserve the worst case before a call, settle to usage after, never cross a cap."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.budget.ledger import (
    BudgetExhausted,
    BudgetLedger,
    Reservation,
    worst_case,
)
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.prices import SEARCH_INPUT_TOKENS
from core.usage import TokenUsage

PRICES = PriceTable.default()
SONNET = "claude-sonnet-5"  # $2 in, $10 out, $2.50 / $4 writes, $0.20 reads


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def ledger(n_layers: int = 1, clock: FakeClock | None = None, **caps: float | int | None) -> BudgetLedger:
    caps.setdefault("reserve_for_later_layers", 0.0)
    return BudgetLedger(BudgetSettings(**caps), PRICES, n_layers=n_layers, clock=clock or FakeClock())


def reserve(book: BudgetLedger, agent: str = "a", layer: int = 1, **kw: int | None) -> Reservation:
    args: dict[str, int | None] = {"input_tokens": 1_000, "max_tokens": 1_000, "max_searches": 0}
    args.update(kw)
    return book.reserve(agent_id=agent, layer=layer, model=SONNET, **args)  # type: ignore[arg-type]


class TestWorstCase:
    def test_without_searches_it_is_the_prompt_at_the_dearest_input_rate_plus_max_tokens(self) -> None:
        bound = worst_case(PRICES, SONNET, input_tokens=10_000, max_tokens=2_000, max_searches=0)
        assert (bound.input_tokens, bound.output_tokens, bound.searches) == (10_000, 2_000, 0)
        assert bound.usd == pytest.approx((10_000 * 4.0 + 2_000 * 10) / 1e6)  # 1h write = $4 is dearest

    def test_each_search_adds_its_results_and_an_iteration_that_rereads_everything(self) -> None:
        bound = worst_case(
            PRICES, SONNET, input_tokens=10_000, max_tokens=2_000, max_searches=2, search_input_tokens=5_000
        )
        # 3 iterations read the prompt, 2 re-read the output, results re-read: 5k·(1 + 2)
        assert bound.input_tokens == 3 * 10_000 + 2 * 2_000 + 5_000 * 3
        assert bound.usd == pytest.approx((49_000 * 4.0 + 2_000 * 10) / 1e6 + 0.02)

    def test_a_tiered_model_is_bounded_at_its_long_prompt_rates_when_the_bound_is_long(self) -> None:
        bound = worst_case(PRICES, "claude-haiku-5-5", input_tokens=150_000, max_tokens=1_000, max_searches=0)
        assert bound.usd == pytest.approx((150_000 * 1.0 + 1_000 * 2.5) / 1e6)


class TestReserveAndSettle:
    def test_settling_records_the_actual_cost_and_frees_the_reservation(self) -> None:
        book = ledger(max_cost_usd=10)
        r = reserve(book, max_searches=1)
        assert book.reserved_usd == pytest.approx(r.usd)
        usage = TokenUsage(input_tokens=2_000, output_tokens=500, web_search_requests=1)
        cost = book.settle(r, usage)
        assert cost == pytest.approx((2_000 * 2 + 500 * 10) / 1e6 + 0.01)
        snap = book.snapshot()
        assert (snap.spent_usd, snap.reserved_usd, snap.searches) == (pytest.approx(cost), 0.0, 1)
        assert [(x.agent_id, x.usage, x.cost_usd) for x in book.records] == [("a", usage, cost)]

    def test_a_call_whose_worst_case_does_not_fit_is_refused_without_side_effects(self) -> None:
        book = ledger(max_cost_usd=0.01)
        with pytest.raises(BudgetExhausted) as caught:
            reserve(book, input_tokens=10_000, max_tokens=4_000)
        assert caught.value.cap == "usd"
        assert "run dollar cap" in caught.value.message
        assert book.snapshot().reserved_usd == 0.0

    def test_reservations_in_flight_count_against_the_cap(self) -> None:
        one_call = worst_case(PRICES, SONNET, input_tokens=1_000, max_tokens=1_000, max_searches=0).usd
        book = ledger(max_cost_usd=one_call * 1.5)
        reserve(book, agent="a")
        with pytest.raises(BudgetExhausted):
            reserve(book, agent="b")

    def test_settling_frees_what_the_call_did_not_use(self) -> None:
        one_call = worst_case(PRICES, SONNET, input_tokens=1_000, max_tokens=1_000, max_searches=0).usd
        book = ledger(max_cost_usd=one_call * 1.5)
        book.settle(reserve(book, agent="a"), TokenUsage(input_tokens=100, output_tokens=10))
        reserve(book, agent="b")  # fits now

    def test_release_drops_a_failed_call_and_is_idempotent(self) -> None:
        book = ledger(max_cost_usd=10)
        r = reserve(book)
        book.release(r)
        book.release(r)
        assert book.snapshot().reserved_usd == 0.0
        with pytest.raises(ValueError, match="not open"):
            book.settle(r, TokenUsage())

    def test_settling_twice_is_an_error(self) -> None:
        book = ledger()
        r = reserve(book)
        book.settle(r, TokenUsage(input_tokens=1))
        with pytest.raises(ValueError):
            book.settle(r, TokenUsage(input_tokens=1))

    def test_usage_beyond_the_reservation_is_recorded_as_is_and_seen_by_later_reservations(self) -> None:
        book = ledger(max_cost_usd=1.0)
        r = reserve(book, input_tokens=10, max_tokens=10)
        cost = book.settle(r, TokenUsage(input_tokens=400_000))  # $0.80: far beyond the estimate
        assert book.snapshot().spent_usd == pytest.approx(cost) == pytest.approx(0.8)
        with pytest.raises(BudgetExhausted):
            reserve(book, input_tokens=50_000, max_tokens=1_000)


class TestCaps:
    def test_run_search_cap(self) -> None:
        book = ledger(max_searches=4)
        book.settle(reserve(book, max_searches=3), TokenUsage(web_search_requests=3))
        with pytest.raises(BudgetExhausted) as caught:
            reserve(book, max_searches=2)
        assert caught.value.cap == "searches"
        reserve(book, max_searches=1)

    def test_run_token_cap(self) -> None:
        book = ledger(max_tokens=5_000)
        with pytest.raises(BudgetExhausted) as caught:
            reserve(book, input_tokens=4_500, max_tokens=1_000)
        assert caught.value.cap == "tokens"
        reserve(book, input_tokens=3_000, max_tokens=1_000)

    def test_per_agent_dollar_cap_leaves_other_agents_free(self) -> None:
        one_call = worst_case(PRICES, SONNET, input_tokens=1_000, max_tokens=1_000, max_searches=0).usd
        book = ledger(per_agent_max_cost_usd=one_call * 1.5)
        reserve(book, agent="a")
        with pytest.raises(BudgetExhausted) as caught:
            reserve(book, agent="a")
        assert caught.value.cap == "agent_usd"
        reserve(book, agent="b")

    @pytest.mark.parametrize(("per_agent", "own"), [(5, None), (None, 5), (5, 9), (9, 5)])
    def test_per_agent_search_caps_the_tighter_wins(self, per_agent: int | None, own: int | None) -> None:
        book = ledger(per_agent_max_searches=per_agent)
        book.settle(reserve(book, max_searches=4, agent_search_cap=own), TokenUsage(web_search_requests=4))
        with pytest.raises(BudgetExhausted) as caught:
            reserve(book, max_searches=2, agent_search_cap=own)
        assert caught.value.cap == "agent_searches"
        reserve(book, max_searches=1, agent_search_cap=own)
        reserve(book, agent="b", max_searches=5, agent_search_cap=own)

    def test_min_searches_shrinks_the_call_to_what_fits(self) -> None:
        book = ledger(max_searches=10)
        book.settle(reserve(book, max_searches=5), TokenUsage(web_search_requests=8))
        r = reserve(book, max_searches=5, min_searches=1)
        assert r.max_searches == 2  # the request must go out with max_uses=2
        with pytest.raises(BudgetExhausted):
            reserve(book, agent="b", max_searches=1, input_tokens=1, max_tokens=1)
        assert reserve(book, agent="b", max_searches=0, input_tokens=1, max_tokens=1).max_searches == 0

    def test_a_refused_reservation_holds_nothing(self) -> None:
        book = ledger(max_cost_usd=1.0)
        with pytest.raises(BudgetExhausted):
            reserve(book, input_tokens=500_000)
        assert book.reserved_usd == 0.0
        reserve(book)


class TestReserveForLaterLayers:
    def test_each_layer_may_fill_a_growing_share_of_the_run_caps(self) -> None:
        book = ledger(n_layers=3, max_cost_usd=100, reserve_for_later_layers=0.2)
        assert [book.layer_share(layer) for layer in (1, 2, 3)] == pytest.approx([0.8, 0.9, 1.0])
        assert ledger(n_layers=1, reserve_for_later_layers=0.2).layer_share(1) == 1.0

    def test_an_early_layer_cannot_use_what_is_held_for_the_last(self) -> None:
        call = worst_case(PRICES, SONNET, input_tokens=100_000, max_tokens=1_000, max_searches=0).usd
        book = ledger(n_layers=2, max_cost_usd=call * 1.5, reserve_for_later_layers=0.5)
        with pytest.raises(BudgetExhausted, match="layer 1 of 2 may use 50%"):
            reserve(book, layer=1, input_tokens=100_000)
        reserve(book, layer=2, input_tokens=100_000)

    def test_the_share_applies_to_searches_too(self) -> None:
        book = ledger(n_layers=2, max_searches=10, reserve_for_later_layers=0.3)
        reserve(book, layer=1, max_searches=7)
        with pytest.raises(BudgetExhausted):
            reserve(book, agent="b", layer=1, max_searches=1)
        reserve(book, agent="c", layer=2, max_searches=3)


class TestTotals:
    def test_per_agent_per_layer_and_run_totals(self) -> None:
        book = ledger(n_layers=2)
        u1, u2 = TokenUsage(input_tokens=10), TokenUsage(output_tokens=20)
        u3 = TokenUsage(web_search_requests=1)
        c1 = book.settle(reserve(book, agent="a", layer=1), u1)
        c2 = book.settle(reserve(book, agent="a", layer=1), u2)
        c3 = book.settle(reserve(book, agent="b", layer=2, max_searches=1), u3)
        assert book.agent_usage("a") == (u1 + u2, pytest.approx(c1 + c2))
        assert book.layer_usage(2) == (u3, pytest.approx(c3))
        assert book.total_usage() == (u1 + u2 + u3, pytest.approx(c1 + c2 + c3))
        assert book.agent_usage("nobody") == (TokenUsage(), 0.0)


class TestBurnRate:
    def test_burn_over_the_last_five_minutes_and_the_projection_to_the_cap(self) -> None:
        clock = FakeClock()
        book = ledger(clock=clock, max_cost_usd=10.0)
        for _ in range(2):
            clock.now += 60
            book.settle(reserve(book), TokenUsage(output_tokens=100_000))  # $1 each
        snap = book.snapshot()
        assert snap.burn_usd_per_min == pytest.approx(1.0)  # $2 over 2 minutes
        assert snap.remaining_usd == pytest.approx(8.0)
        assert snap.seconds_to_cap == pytest.approx(8 * 60)

    def test_old_spend_leaves_the_window(self) -> None:
        clock = FakeClock()
        book = ledger(clock=clock, max_cost_usd=10.0)
        clock.now += 60
        book.settle(reserve(book), TokenUsage(output_tokens=100_000))
        clock.now += 600
        snap = book.snapshot()
        assert snap.burn_usd_per_min == 0.0
        assert snap.seconds_to_cap is None

    def test_no_cap_no_projection(self) -> None:
        clock = FakeClock()
        book = ledger(clock=clock)
        clock.now += 60
        book.settle(reserve(book), TokenUsage(output_tokens=100_000))
        snap = book.snapshot()
        assert snap.burn_usd_per_min > 0
        assert (snap.remaining_usd, snap.seconds_to_cap) == (None, None)

    def test_the_event_carries_the_snapshot(self) -> None:
        book = ledger(max_cost_usd=5.0, max_searches=10, max_tokens=10**6)
        r = reserve(book, max_searches=2)
        event = book.to_event("run-1")
        assert (event.run_id, event.cap_usd, event.search_cap, event.token_cap) == ("run-1", 5.0, 10, 10**6)
        assert event.reserved_usd == pytest.approx(r.usd)
        assert event.reserved_searches == 2


class TestPersistence:
    def test_state_is_json_and_does_not_grow_with_the_number_of_calls(self) -> None:
        def state_after(calls: int) -> str:
            book = ledger()
            for i in range(calls):
                usage = TokenUsage(input_tokens=1, output_tokens=1)
                book.settle(reserve(book, agent=f"agent-{i % 3}"), usage)
            return json.dumps(book.to_state())

        short, long = state_after(3), state_after(3_000)
        assert json.loads(short).keys() == json.loads(long).keys()
        assert len(long) < 1.2 * len(short)  # totals per agent: only their digits grow

    def test_a_restored_ledger_counts_prior_spend_toward_its_caps(self) -> None:
        book = ledger(n_layers=2)
        usage = TokenUsage(input_tokens=100_000, output_tokens=50_000, web_search_requests=4)
        book.settle(reserve(book, agent="a", max_searches=4), usage)
        state = json.loads(json.dumps(book.to_state()))

        fresh = BudgetLedger(BudgetSettings(max_cost_usd=0.75), PRICES, n_layers=2)
        fresh.restore(state)
        assert fresh.agent_usage("a") == book.agent_usage("a")
        assert fresh.total_usage() == book.total_usage()
        assert fresh.layer_usage(1) == book.layer_usage(1)
        with pytest.raises(BudgetExhausted):  # $0.74 spent: almost nothing left of $0.75
            reserve(fresh, layer=2)

    def test_resuming_with_a_raised_cap_allows_more_calls(self) -> None:
        book = ledger(max_cost_usd=0.75)
        book.settle(reserve(book), TokenUsage(input_tokens=100_000, output_tokens=50_000))
        raised = BudgetLedger(BudgetSettings(max_cost_usd=2.0), PRICES, n_layers=1)
        raised.restore(book.to_state())
        reserve(raised)
        assert raised.snapshot().spent_usd == pytest.approx(0.7)

    def test_the_state_says_each_agents_totals_as_they_are_after_every_change(self) -> None:
        book = ledger()
        book.settle(reserve(book, agent="a"), TokenUsage(input_tokens=10, output_tokens=1))
        book.settle(reserve(book, agent="b"), TokenUsage(input_tokens=20, output_tokens=2))
        first = book.to_state()
        book.settle(reserve(book, agent="a"), TokenUsage(input_tokens=5, output_tokens=5))
        book.release(reserve(book, agent="b"))
        second = book.to_state()
        assert first["agents"]["a"]["calls"] == 1 and second["agents"]["a"]["calls"] == 2
        assert second["agents"]["a"]["usage"]["input_tokens"] == 15
        assert (first["agents"]["b"]["closed"], second["agents"]["b"]["closed"]) == (1, 2)
        book.raise_agent("b", 1, TokenUsage(input_tokens=99), 5.0, 3)
        raised = book.to_state()["agents"]["b"]
        assert (raised["calls"], raised["cost_usd"], raised["usage"]["input_tokens"]) == (3, 5.0, 99)
        fresh = ledger()
        fresh.restore(json.loads(json.dumps(book.to_state())))
        assert fresh.to_state() == book.to_state()

    def test_an_unknown_state_version_is_refused(self) -> None:
        with pytest.raises(ValueError, match="version"):
            ledger().restore({"version": 99, "agents": {}})


# --- the property: no cap is ever crossed, and the books add up ----------------------------------

# Hand-written rates ($/MTok: input, output, 5m write, 1h write, read) kept apart from core.budget.pricing,
# so the recomputation below is independent of the code under test.
RATES = {
    "claude-sonnet-5": (2.0, 10.0, 2.5, 4.0, 0.2),
    "claude-opus-5-5": (4.0, 20.0, 5.0, 8.0, 0.2),
    "claude-haiku-4-5": (1.0, 5.0, 1.25, 2.0, 0.1),
    "claude-haiku-5-5": (0.1, 0.5, 0.125, 0.2, 0.01),
}
HAIKU_5_5_LONG = (0.5, 2.5, 0.625, 1.0, 0.05)


def independent_cost(model: str, u: TokenUsage) -> float:
    total_in = u.input_tokens + u.cache_write_5m_tokens + u.cache_write_1h_tokens + u.cache_read_input_tokens
    rates = HAIKU_5_5_LONG if model == "claude-haiku-5-5" and total_in > 100_000 else RATES[model]
    i, o, w5, w1, r = rates
    tokens = (
        u.input_tokens * i
        + u.output_tokens * o
        + u.cache_write_5m_tokens * w5
        + u.cache_write_1h_tokens * w1
        + u.cache_read_input_tokens * r
    )
    return tokens / 1e6 + u.web_search_requests * 10 / 1000


@st.composite
def usages_within(draw: st.DrawFn, r: Reservation) -> TokenUsage:
    """Any usage the API could report for a call under the reservation's own bounds."""
    input_bound = r.tokens - r.max_tokens
    total_in = draw(st.integers(0, input_bound))
    cuts = sorted(draw(st.lists(st.integers(0, total_in), min_size=3, max_size=3)))
    parts = [cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], total_in - cuts[2]]
    return TokenUsage(
        input_tokens=parts[0],
        cache_write_5m_tokens=parts[1],
        cache_write_1h_tokens=parts[2],
        cache_read_input_tokens=parts[3],
        output_tokens=draw(st.integers(0, r.max_tokens)),
        web_search_requests=draw(st.integers(0, r.max_searches)),
    )


@st.composite
def budget_settings(draw: st.DrawFn) -> BudgetSettings:
    optional = st.none() | st.floats(0.02, 5.0)
    return BudgetSettings(
        max_cost_usd=draw(st.floats(0.02, 5.0)),
        max_searches=draw(st.none() | st.integers(1, 40)),
        max_tokens=draw(st.none() | st.integers(10_000, 3_000_000)),
        per_agent_max_cost_usd=draw(optional),
        per_agent_max_searches=draw(st.none() | st.integers(1, 15)),
        reserve_for_later_layers=draw(st.floats(0.0, 0.6)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=budget_settings(), n_layers=st.integers(1, 3), data=st.data())
def test_no_cap_is_crossed_and_the_cost_equals_an_independent_recomputation(
    config: BudgetSettings, n_layers: int, data: st.DataObject
) -> None:
    book = BudgetLedger(config, PRICES, n_layers=n_layers, clock=FakeClock(), search_input_tokens=3_000)
    n_agents = data.draw(st.integers(1, 6), label="agents")
    agents = [
        (
            f"agent-{i}",
            data.draw(st.integers(1, n_layers)),
            data.draw(st.sampled_from(sorted(RATES))),
            data.draw(st.none() | st.integers(1, 12)),
        )
        for i in range(n_agents)
    ]
    in_flight: dict[int, Reservation] = {}
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        index = data.draw(st.integers(0, n_agents - 1))  # the scheduler: whichever agent runs next
        agent_id, layer, model, own_cap = agents[index]
        open_call = in_flight.pop(index, None)
        if open_call is None:
            with contextlib.suppress(BudgetExhausted):  # a refused call is simply not made
                in_flight[index] = book.reserve(
                    agent_id=agent_id,
                    layer=layer,
                    model=model,
                    input_tokens=data.draw(st.integers(0, 150_000)),
                    max_tokens=data.draw(st.integers(1, 8_000)),
                    max_searches=data.draw(st.integers(0, 5)),
                    min_searches=data.draw(st.none() | st.integers(0, 5)),
                    min_max_tokens=data.draw(st.none() | st.integers(1, 8_000)),  # shrinks to fit
                    agent_search_cap=own_cap,
                )
        elif data.draw(st.integers(0, 9)) == 0:
            book.release(open_call)  # the call failed without usage
        else:
            book.settle(open_call, data.draw(usages_within(open_call)))

        snap = book.snapshot()
        # the running figures of the calls in flight are theirs, added up afresh (no report holds here)
        assert snap.reserved_usd == pytest.approx(sum(r.usd for r in in_flight.values()), abs=1e-9)
        assert snap.reserved_tokens == sum(r.tokens for r in in_flight.values())
        assert snap.reserved_searches == sum(r.max_searches for r in in_flight.values())
        assert config.max_cost_usd is not None
        assert snap.spent_usd <= config.max_cost_usd + 1e-9
        assert snap.spent_usd + snap.reserved_usd <= config.max_cost_usd + 1e-9
        if config.max_searches is not None:
            assert snap.searches + snap.reserved_searches <= config.max_searches
        if config.max_tokens is not None:
            assert snap.tokens <= config.max_tokens
        for agent_id, _, _, own_cap in agents:
            usage, cost = book.agent_usage(agent_id)
            if config.per_agent_max_cost_usd is not None:
                assert cost <= config.per_agent_max_cost_usd + 1e-9
            caps = [c for c in (config.per_agent_max_searches, own_cap) if c is not None]
            if caps:
                assert usage.web_search_requests <= min(caps)

    recomputed = sum(independent_cost(r.model, r.usage) for r in book.records)
    assert round(book.snapshot().spent_usd, 2) == round(recomputed, 2)
    assert book.snapshot().spent_usd == pytest.approx(recomputed, abs=1e-9)
    assert sum(r.usage.web_search_requests for r in book.records) == book.snapshot().searches


def test_the_default_search_allowance_covers_a_recorded_real_search() -> None:
    # tests/fixtures/anthropic-recorded/web-search-non-streaming.json: one search billed 11,306 input tokens
    # for a one-line prompt; the bound for a ~300-token prompt must cover it.
    bound = worst_case(PRICES, "claude-haiku-4-5", input_tokens=300, max_tokens=1_024, max_searches=1)
    assert bound.input_tokens >= 11_306
    assert SEARCH_INPUT_TOKENS >= 10_000
