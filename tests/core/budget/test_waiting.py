"""Reports held, reservations that wait: a binding cap is used, never stranded, and never crossed."""

from __future__ import annotations

import asyncio

import pytest

from core.budget.ledger import BudgetExhausted, BudgetLedger, CallRequest, worst_case
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.usage import TokenUsage

PRICES = PriceTable.default()
SONNET = "claude-sonnet-5"  # $2 in, $10 out, $2.50 / $4 writes


def book(**caps: float | int) -> BudgetLedger:
    return BudgetLedger(BudgetSettings(reserve_for_later_layers=0.0, **caps), PRICES, n_layers=1)


def call(
    agent: str, *, report: bool = False, searches: int = 0, held_input: int | None = 1_000
) -> CallRequest:
    return CallRequest(
        agent_id=agent,
        layer=1,
        model=SONNET,
        input_tokens=1_000,
        max_tokens=1_000,
        max_searches=searches,
        min_searches=min(1, searches),
        cache_write="none",
        report_input_tokens=None if report else held_input,
        report=report,
    )


ONE = worst_case(PRICES, SONNET, input_tokens=1_000, max_tokens=1_000, max_searches=0, cache_write="none").usd
REPORT = worst_case(
    PRICES, SONNET, input_tokens=2_000, max_tokens=1_000, max_searches=0, cache_write="none"
).usd


class TestWorstCaseRates:
    @pytest.mark.parametrize(("write", "rate"), [("none", 2.0), ("5m", 2.5), ("1h", 4.0)])
    def test_input_is_priced_at_the_dearest_rate_the_request_can_be_billed(
        self, write: str, rate: float
    ) -> None:
        bound = worst_case(
            PRICES, SONNET, input_tokens=10_000, max_tokens=0, max_searches=0, cache_write=write
        )  # type: ignore[arg-type]
        assert bound.usd == pytest.approx(10_000 * rate / 1e6)


class TestReportHold:
    def test_a_research_call_also_holds_its_agents_report(self) -> None:
        ledger = book(max_cost_usd=10)
        r = ledger.reserve_request(call("a"))
        assert ledger.reserved_usd == pytest.approx(r.usd + REPORT)
        ledger.settle(r, TokenUsage(input_tokens=10, output_tokens=10))
        assert ledger.reserved_usd == pytest.approx(REPORT), "the hold outlives the call"
        ledger.end_agent("a")
        assert ledger.reserved_usd == 0.0

    def test_the_report_spends_its_hold_even_when_nothing_else_fits(self) -> None:
        ledger = book(max_cost_usd=ONE + REPORT + 0.001)
        ledger.settle(ledger.reserve_request(call("a")), TokenUsage(input_tokens=1_000, output_tokens=1_000))
        with pytest.raises(BudgetExhausted):
            ledger.reserve_request(call("a"))  # research: no room left beside the hold
        with pytest.raises(BudgetExhausted):
            ledger.reserve_request(call("b"))  # nor for anyone else: the hold is counted
        report = ledger.reserve_request(call("a", report=True))
        assert report.max_searches == 0
        assert ledger.reserved_usd == pytest.approx(report.usd), "the hold became the report's reservation"

    def test_a_search_cap_never_blocks_a_report(self) -> None:
        ledger = book(max_searches=2, max_cost_usd=10)
        ledger.settle(ledger.reserve_request(call("a", searches=2)), TokenUsage(web_search_requests=2))
        with pytest.raises(BudgetExhausted) as caught:
            ledger.reserve_request(call("a", searches=1))
        assert caught.value.cap == "searches"
        ledger.reserve_request(call("a", report=True))


class TestWaiting:
    async def test_a_call_that_fits_once_others_settle_waits_instead_of_failing(self) -> None:
        ledger = book(max_cost_usd=2 * (ONE + REPORT) - 0.001)
        first = ledger.reserve_request(call("a"))
        waits: list[BudgetExhausted] = []
        second = asyncio.ensure_future(ledger.acquire(call("b"), on_wait=waits.append))
        await asyncio.sleep(0)
        assert not second.done() and ledger.waiting == 1
        assert waits and waits[0].cap == "usd" and waits[0].reason == "reserved"
        ledger.settle(first, TokenUsage(input_tokens=10, output_tokens=10))
        granted = await asyncio.wait_for(second, 10)
        assert granted.agent_id == "b" and ledger.waiting == 0

    async def test_a_call_that_cannot_fit_even_alone_fails_at_once_saying_spent(self) -> None:
        ledger = book(max_cost_usd=ONE + REPORT + 0.001)
        ledger.settle(ledger.reserve_request(call("a")), TokenUsage(output_tokens=50_000))  # $0.50
        with pytest.raises(BudgetExhausted) as caught:
            await asyncio.wait_for(ledger.acquire(call("b")), 10)
        assert caught.value.reason == "spent" and "run dollar cap" in caught.value.message

    async def test_waiters_are_served_first_come_first_served(self) -> None:
        ledger = book(max_cost_usd=2 * (ONE + REPORT) - 0.001)
        blocking = ledger.reserve_request(call("x"))
        order: list[str] = []

        async def agent(name: str) -> None:
            r = await ledger.acquire(call(name))
            order.append(name)
            await asyncio.sleep(0)
            ledger.settle(r, TokenUsage(output_tokens=1))
            ledger.end_agent(name)

        tasks = [asyncio.ensure_future(agent(n)) for n in ("b", "c", "d")]
        await asyncio.sleep(0)
        ledger.settle(blocking, TokenUsage(output_tokens=1))
        ledger.end_agent("x")
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert order == ["b", "c", "d"]

    async def test_when_every_agent_waits_one_is_refused_writes_its_report_and_the_other_goes_on(
        self,
    ) -> None:
        ledger = book(max_cost_usd=ONE + 2 * REPORT + 0.0001)
        ledger.settle(ledger.reserve_request(call("a")), TokenUsage(output_tokens=1))
        ledger.settle(ledger.reserve_request(call("b")), TokenUsage(output_tokens=1))
        # Both hold a report; neither's next call (with its larger report) fits beside the other's hold.

        async def agent(name: str) -> str:
            try:
                r = await ledger.acquire(call(name, held_input=5_000))
            except BudgetExhausted:
                report = await ledger.acquire(call(name, report=True))  # never waits: the hold pays
                ledger.settle(report, TokenUsage(output_tokens=1))
                ledger.end_agent(name)
                return "reported"
            ledger.settle(r, TokenUsage(output_tokens=1))
            ledger.end_agent(name)
            return "researched"

        outcomes = await asyncio.wait_for(asyncio.gather(agent("a"), agent("b")), 10)
        assert sorted(outcomes) == ["reported", "researched"]

    async def test_a_cancelled_waiter_leaves_the_queue(self) -> None:
        ledger = book(max_cost_usd=2 * (ONE + REPORT) - 0.001)
        first = ledger.reserve_request(call("a"))
        waiting = asyncio.ensure_future(ledger.acquire(call("b")))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert ledger.waiting == 0
        ledger.settle(first, TokenUsage())
        assert ledger.reserved_usd == pytest.approx(REPORT)


def test_the_closing_message_names_each_binding_cap_its_agents_and_why() -> None:
    ledger = book(max_cost_usd=1.0, per_agent_max_searches=2)
    ledger.record_stop("a", BudgetExhausted("usd", "run dollar cap", "reserved"))
    ledger.record_stop("b", BudgetExhausted("usd", "run dollar cap", "spent"))
    ledger.record_stop("c", BudgetExhausted("agent_searches", "agent c search cap", "spent"))
    message = ledger.stop_message()
    assert message.startswith("a budget cap was reached ($0.00 of $1.00 spent)")
    assert "the run dollar cap stopped a, b, 1 of them for lack of room beside others' reserv" in message
    assert "the per-agent search cap stopped c" in message
