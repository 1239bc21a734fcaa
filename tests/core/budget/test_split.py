"""Two kinds of money in the ledger: billed (the usage the API reported) and unconfirmed (the bound
charged for an attempt whose usage never arrived). The caps count both; the split survives a
checkpoint's round trip, and a state saved before the split loads as all billed."""

from __future__ import annotations

import json

import pytest

from core.api.attempt import AttemptProgress, Outcome
from core.api.transport import MessageDelta
from core.budget.ledger import BudgetExhausted, BudgetLedger, Reservation
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.usage import TokenUsage, Unconfirmed

PRICES = PriceTable.default()
SONNET = "claude-sonnet-5"
START = TokenUsage(input_tokens=900, cache_read_input_tokens=100, output_tokens=1)


def book(**caps: float | int | None) -> BudgetLedger:
    return BudgetLedger(BudgetSettings(reserve_for_later_layers=0.0, **caps), PRICES, n_layers=1)


def reserve(ledger: BudgetLedger, agent: str = "a", searches: int = 2) -> Reservation:
    return ledger.reserve(
        agent_id=agent, layer=1, model=SONNET, input_tokens=1_000, max_tokens=2_000, max_searches=searches
    )


def cut(searches: int = 1) -> AttemptProgress:
    """An attempt the server broke off after message_start, with a search that ran."""
    return AttemptProgress(
        sent=True, start_usage=START, output_bytes=300, blocks=2, searches=searches, results=searches
    )


def test_a_settled_call_is_billed_and_a_cut_attempt_unconfirmed_and_caps_count_both() -> None:
    ledger = book(max_cost_usd=10)
    reported = TokenUsage(input_tokens=1_000, output_tokens=400, web_search_requests=1)
    billed = ledger.settle(reserve(ledger), reported)
    charge, bound = ledger.charge_failed(reserve(ledger), cut(), Outcome.STOPPED)
    assert charge.basis == "received" and not charge.billed

    snap = ledger.snapshot()
    assert snap.billed_usd == pytest.approx(billed) and billed == pytest.approx(PRICES.cost(SONNET, reported))
    assert snap.unconfirmed_usd == pytest.approx(bound) and bound > 0
    assert (snap.unconfirmed_attempts, snap.unconfirmed_searches, snap.billed_searches) == (1, 1, 1)
    assert snap.spent_usd == pytest.approx(billed + bound)  # what the caps count
    assert ledger.agent_unconfirmed("a") == ledger.unconfirmed == Unconfirmed(bound, 1, 1)

    event = ledger.to_event("run")
    assert (event.billed_usd, event.unconfirmed_usd) == pytest.approx((billed, bound))
    assert (event.unconfirmed_attempts, event.billed_searches, event.unconfirmed_searches) == (1, 1, 1)


def test_a_failed_attempt_whose_usage_arrived_is_billed() -> None:
    ledger = book()
    usage = TokenUsage(input_tokens=5_000, output_tokens=321, web_search_requests=1)
    progress = cut()
    progress.observe(MessageDelta(usage, "end_turn"))
    charge, cost = ledger.charge_failed(reserve(ledger), progress, Outcome.STOPPED)
    assert charge.billed and cost > 0
    assert ledger.unconfirmed == Unconfirmed()
    assert ledger.snapshot().billed_usd == pytest.approx(cost)


def test_a_stop_and_a_lost_call_are_unconfirmed_at_their_worst_case() -> None:
    ledger = book()
    reservation = reserve(ledger)
    _, stopped = ledger.charge_failed(reservation, AttemptProgress(sent=True), Outcome.UNKNOWN)
    assert stopped == pytest.approx(reservation.usd)
    worst = ledger.worst_usage(reserve(ledger, "b"))
    lost = ledger.charge_lost("c", 1, SONNET, worst)
    assert ledger.unconfirmed.attempts == 2
    assert ledger.unconfirmed.usd == pytest.approx(stopped + lost)
    assert ledger.snapshot().billed_usd == pytest.approx(0.0)


def test_unconfirmed_dollars_count_against_the_cap() -> None:
    ledger = book(max_cost_usd=0.04)
    first = reserve(ledger, searches=0)
    ledger.charge_failed(first, AttemptProgress(sent=True), Outcome.UNKNOWN)  # its whole worst case
    assert ledger.snapshot().billed_usd == 0.0
    room = 0.04 - ledger.spent_usd
    assert room < first.usd  # a second call of the same worst case no longer fits
    with pytest.raises(BudgetExhausted):
        reserve(ledger, searches=0)


def test_the_split_survives_a_checkpoint_and_an_old_state_loads_as_billed() -> None:
    ledger = book()
    ledger.settle(reserve(ledger), TokenUsage(input_tokens=1_000, output_tokens=100))
    ledger.charge_failed(reserve(ledger, "b"), cut(), Outcome.STOPPED)
    state = json.loads(json.dumps(ledger.to_state()))

    fresh = book()
    fresh.restore(state)
    before, after = ledger.snapshot(), fresh.snapshot()
    assert (after.spent_usd, after.unconfirmed_usd, after.unconfirmed_attempts) == (
        before.spent_usd,
        before.unconfirmed_usd,
        1,
    )
    assert (after.searches, after.unconfirmed_searches) == (before.searches, before.unconfirmed_searches)
    assert fresh.agent_unconfirmed("b") == ledger.agent_unconfirmed("b")
    assert fresh.agent_unconfirmed("a") == Unconfirmed()

    for data in state["agents"].values():  # a checkpoint written before the split
        for key in ("unconfirmed_usd", "unconfirmed_attempts", "unconfirmed_searches"):
            data.pop(key, None)
    old = book()
    old.restore(state)
    assert old.spent_usd == pytest.approx(ledger.spent_usd)
    assert old.unconfirmed == Unconfirmed()


def test_a_state_without_unconfirmed_attempts_is_written_as_before_the_split() -> None:
    ledger = book()
    ledger.settle(reserve(ledger), TokenUsage(input_tokens=1_000, output_tokens=100))
    assert set(ledger.to_state()["agents"]["a"]) == {"layer", "usage", "cost_usd", "calls", "closed"}


def test_a_resume_raised_by_the_journal_keeps_the_unconfirmed_part_it_accounts_for() -> None:
    ledger = book()
    ledger.settle(reserve(ledger), TokenUsage(input_tokens=1_000, output_tokens=100))
    fresh = book()
    fresh.restore(ledger.to_state())
    usage = TokenUsage(input_tokens=9_000, output_tokens=900, web_search_requests=1)
    added = fresh.raise_agent("a", 1, usage, 0.5, 3, Unconfirmed(0.2, 1, 1))
    assert added == pytest.approx(0.5 - ledger.spent_usd)
    assert fresh.agent_unconfirmed("a") == fresh.unconfirmed == Unconfirmed(0.2, 1, 1)
    assert fresh.snapshot().billed_usd == pytest.approx(0.3)
