"""A failed attempt's charge: nothing when the API never ran it, what it reported when it did,
a bound from what streamed when the server cut it, the worst case when nobody knows; never more
than the reservation held."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.api.attempt import AttemptProgress, Outcome
from core.api.transport import MessageDelta
from core.budget.charges import BLOCK_TOKENS, TAIL_TOKENS
from core.budget.ledger import BudgetLedger, Reservation, worst_case
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.usage import TokenUsage

PRICES = PriceTable.default()
SONNET = "claude-sonnet-5"
START = TokenUsage(input_tokens=900, cache_read_input_tokens=100, output_tokens=1)


def book(**caps: float | int | None) -> BudgetLedger:
    return BudgetLedger(BudgetSettings(reserve_for_later_layers=0.0, **caps), PRICES, n_layers=1)


def reserve(ledger: BudgetLedger, searches: int = 2) -> Reservation:
    return ledger.reserve(
        agent_id="a", layer=1, model=SONNET, input_tokens=1_000, max_tokens=2_000, max_searches=searches
    )


def streamed(**fields: int) -> AttemptProgress:
    progress = AttemptProgress(sent=True, start_usage=START)
    for name, value in fields.items():
        setattr(progress, name, value)
    return progress


def test_an_attempt_the_api_never_ran_is_charged_nothing_and_its_reservation_freed() -> None:
    ledger = book(max_cost_usd=10)
    charge, cost = ledger.charge_failed(reserve(ledger), streamed(output_bytes=500), Outcome.NOT_RUN)
    assert (charge.basis, charge.usage, cost) == ("none", TokenUsage(), 0.0)
    assert ledger.spent_usd == 0.0 and ledger.reserved_usd == 0.0


def test_a_message_delta_that_arrived_is_charged_exactly() -> None:
    ledger = book()
    usage = TokenUsage(input_tokens=5_000, output_tokens=321, web_search_requests=1)
    progress = streamed(output_bytes=9_999)
    progress.observe(MessageDelta(usage, "end_turn"))
    charge, cost = ledger.charge_failed(reserve(ledger), progress, Outcome.STOPPED)
    assert (charge.basis, charge.usage) == ("reported", usage)
    assert cost == pytest.approx(PRICES.cost(SONNET, usage))


def test_a_stream_cut_by_the_server_is_bounded_from_what_it_sent() -> None:
    ledger = book()
    progress = streamed(output_bytes=800, blocks=4, searches=1, results=1)
    charge, _ = ledger.charge_failed(reserve(ledger), progress, Outcome.STOPPED)
    assert charge.basis == "received"
    assert charge.usage.output_tokens == 800 + 4 * BLOCK_TOKENS + TAIL_TOKENS
    assert charge.usage.web_search_requests == 1
    assert charge.usage.cache_read_input_tokens == 100  # the first sampling, as message_start said
    # the search's iteration re-read the prompt, the output and one search's results
    rereads = 1_000 + charge.usage.output_tokens + ledger.search_input_tokens
    assert charge.usage.total_input_tokens == 1_000 + rereads


def test_an_errored_search_is_not_billed_but_its_iteration_is() -> None:
    ledger = book()
    progress = streamed(output_bytes=100, blocks=2, searches=1, results=1, search_errors=1)
    charge, _ = ledger.charge_failed(reserve(ledger), progress, Outcome.STOPPED)
    assert charge.usage.web_search_requests == 0
    assert charge.usage.total_input_tokens > START.total_input_tokens


def test_a_continuations_result_counts_though_its_search_was_issued_in_the_paused_call() -> None:
    ledger = book()
    progress = streamed(output_bytes=10, blocks=1, searches=0, results=1)
    charge, _ = ledger.charge_failed(reserve(ledger), progress, Outcome.STOPPED)
    assert charge.usage.web_search_requests == 1


@pytest.mark.parametrize("start", [None, START])
def test_an_attempt_we_stopped_listening_to_is_charged_as_reserved(start: TokenUsage | None) -> None:
    ledger = book()
    reservation = reserve(ledger)
    progress = AttemptProgress(sent=True, start_usage=start, output_bytes=10)
    charge, cost = ledger.charge_failed(reservation, progress, Outcome.UNKNOWN)
    assert charge.basis == "worst_case"
    assert charge.usage.output_tokens == 2_000 and charge.usage.web_search_requests == 2
    assert cost <= reservation.usd + 1e-12
    if start is None:
        assert cost == pytest.approx(reservation.usd)


def test_the_worst_usage_costs_what_the_reservation_holds() -> None:
    ledger = book()
    for searches in (0, 1, 5):
        reservation = reserve(ledger, searches)
        assert PRICES.cost(SONNET, ledger.worst_usage(reservation)) == pytest.approx(reservation.usd)
        bound = worst_case(PRICES, SONNET, input_tokens=1_000, max_tokens=2_000, max_searches=searches)
        assert reservation.usd == pytest.approx(bound.usd)


progresses = st.builds(
    AttemptProgress,
    sent=st.just(True),
    start_usage=st.none() | st.builds(TokenUsage, input_tokens=st.integers(0, 5_000)),
    output_bytes=st.integers(0, 50_000),
    blocks=st.integers(0, 40),
    searches=st.integers(0, 6),
    results=st.integers(0, 6),
    search_errors=st.integers(0, 6),
)


@given(progress=progresses, outcome=st.sampled_from(list(Outcome)), searches=st.integers(0, 5))
def test_no_charge_exceeds_its_reservation_so_no_cap_the_reservation_fitted_is_crossed(
    progress: AttemptProgress, outcome: Outcome, searches: int
) -> None:
    ledger = book()
    reservation = reserve(ledger, searches)
    charge, cost = ledger.charge_failed(reservation, progress, outcome)
    assert cost <= reservation.usd * (1 + 1e-9)
    assert charge.usage.total_tokens <= reservation.tokens
    assert charge.usage.web_search_requests <= reservation.max_searches
    assert ledger.reserved_usd == 0.0
    if outcome is not Outcome.NOT_RUN:  # never less than what streamed (up to the request's limit)
        assert charge.usage.output_tokens >= min(progress.output_bytes, reservation.max_tokens)
