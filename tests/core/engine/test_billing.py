"""A call's attempts each run on a reservation of their own: a failed one is charged, the next one
reserves again, and the cap binds across them (a retry that no longer fits is a budget stop)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from core.api.attempt import AttemptProgress
from core.api.retry import RequestGate, RetryPolicy, call_with_retries
from core.budget.charges import Charge
from core.budget.ledger import BudgetExhausted, BudgetLedger, CallRequest, Reservation, worst_case
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings, RetrySettings
from core.engine.billing import AttemptBudget
from core.usage import TokenUsage

PRICES = PriceTable.default()
MODEL = "claude-sonnet-5"
REQUEST = CallRequest(
    agent_id="a", layer=1, model=MODEL, input_tokens=1_000, max_tokens=1_000, max_searches=1
)
ONE_CALL = worst_case(PRICES, MODEL, input_tokens=1_000, max_tokens=1_000, max_searches=1).usd


def book(cap: float) -> BudgetLedger:
    return BudgetLedger(BudgetSettings(max_cost_usd=cap, reserve_for_later_layers=0.0), PRICES, n_layers=1)


async def attempts(ledger: BudgetLedger, outcomes: list[Any]) -> tuple[list[tuple[Charge, float]], Any]:
    """Run a call whose attempts end as ``outcomes`` say (an exception, or a usage to succeed with)."""
    charges: list[tuple[Charge, float]] = []
    budget = AttemptBudget(
        ledger,
        await ledger.acquire(REQUEST),
        lambda: ledger.acquire(REQUEST),
        lambda charge, cost, outcome, progress: charges.append((charge, cost)),
    )

    async def attempt(progress: AttemptProgress) -> TokenUsage:
        progress.sent = True
        progress.start_usage = TokenUsage(input_tokens=1_000)
        progress.output_bytes = 200
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    policy = RetryPolicy(RetrySettings(max_attempts=5, base_delay_s=0.001, max_delay_s=0.001))
    try:
        usage = await call_with_retries(
            lambda progress: budget.run(attempt, progress),
            policy=policy,
            gate=RequestGate(),
            on_retry=lambda info, n, wait: None,
            before_attempt=budget.ready,
        )
        return charges, budget.settle(usage)
    finally:
        budget.close()


async def test_each_failed_attempt_is_charged_and_the_success_settled() -> None:
    ledger = book(cap=10 * ONE_CALL)
    broken = httpx2.RemoteProtocolError("peer closed")
    charges, cost = await attempts(ledger, [broken, broken, TokenUsage(input_tokens=1_000, output_tokens=50)])
    assert [c.basis for c, _ in charges] == ["received", "received"]
    assert ledger.spent_usd == pytest.approx(sum(usd for _, usd in charges) + cost)
    assert ledger.reserved_usd == 0.0


async def test_a_retry_that_no_longer_fits_the_cap_stops_on_the_budget_having_charged_the_failure() -> None:
    ledger = book(cap=ONE_CALL * 1.5)  # one attempt's worst case fits, not two
    silent = httpx2.ReadTimeout("no byte for a while")  # it may have run to the end: its worst case
    with pytest.raises(BudgetExhausted) as stopped:
        await attempts(ledger, [silent, TokenUsage(output_tokens=1)])
    assert stopped.value.cap == "usd"
    assert 0.9 * ONE_CALL < ledger.spent_usd <= ONE_CALL  # its input as message_start reported it
    assert ledger.reserved_usd == 0.0


async def test_a_cancelled_attempt_is_charged_and_the_cancellation_propagates() -> None:
    ledger = book(cap=10 * ONE_CALL)
    with pytest.raises(asyncio.CancelledError):
        await attempts(ledger, [asyncio.CancelledError()])
    assert (
        ledger.spent_usd == pytest.approx(PRICES.cost(MODEL, ledger.total_usage()[0]))
        and ledger.total_usage()[0].output_tokens == 1_000
    )  # max_tokens: the server may have gone on
    assert ledger.reserved_usd == 0.0


async def test_an_unused_reservation_is_released_when_the_call_is_cancelled_between_attempts() -> None:
    ledger = book(cap=10 * ONE_CALL)
    first: Reservation = await ledger.acquire(REQUEST)
    budget = AttemptBudget(ledger, first, lambda: ledger.acquire(REQUEST), lambda *args: None)
    budget.close()
    budget.close()
    assert ledger.reserved_usd == 0.0 and ledger.spent_usd == 0.0
