"""A resume's spend is the largest any record of the run accounts for, never less than any of them,
and a call in flight at a crash is charged at the prices it was sent at, whatever the config says now."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable, cost_at
from core.config.model import BudgetSettings, ModelPrice, PricingSettings
from core.engine.recovery import (
    Account,
    JournalAccount,
    RunRecords,
    account_journal,
    price_lost_call,
    reconcile,
)
from core.persistence.batchlog import BatchRecords, BatchRequestRecord
from core.usage import TokenUsage

PRICES = PriceTable.default()
MODEL = "claude-sonnet-4-5"
FIELDS = tuple(TokenUsage().to_dict())


def ledger_from(agents: dict[str, dict[str, Any]]) -> BudgetLedger:
    book = BudgetLedger(BudgetSettings(max_cost_usd=100.0), PRICES, n_layers=1)
    if agents:
        book.restore({"version": 1, "agents": agents})
    return book


def records(journal: JournalAccount, in_flight: dict[str, dict[str, Any]] | None = None) -> RunRecords:
    return RunRecords(journal=journal, in_flight=in_flight or {}, restored_from=None, damaged=(), missing=())


usages = st.builds(TokenUsage, *(st.integers(0, 10**6) for _ in FIELDS))
dollars = st.floats(0, 50, allow_nan=False)
calls = st.integers(0, 40)
source = st.tuples(usages, dollars, calls)
agents = st.dictionaries(
    st.sampled_from(["north", "south", "east", "gone"]),
    st.tuples(st.none() | source, st.none() | source, st.none() | dollars, st.booleans()),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agents)
def test_each_agent_restores_the_largest_spend_of_its_checkpoint_journal_and_write_ahead(
    sources: dict[str, tuple[Any, Any, float | None, bool]],
) -> None:
    saved = {
        a: {"layer": 1, "usage": s[0].to_dict(), "cost_usd": s[1], "calls": s[2], "closed": s[2]}
        for a, (s, _, _, _) in sources.items()
        if s is not None
    }
    journal = JournalAccount(
        agents={
            a: Account(layer=1, usage=j[0], cost_usd=j[1], calls=j[2], last_charge_at=100.0)
            for a, (_, j, _, _) in sources.items()
            if j is not None
        }
    )
    in_flight = {
        a: {
            "agent_id": a,
            "layer": 1,
            "model": MODEL,
            "turn": 3,
            "worst_usage": TokenUsage(input_tokens=1000, output_tokens=500).to_dict(),
            "spent_before": before,
            "prices": PRICES.rates(MODEL, TokenUsage()),
            # In flight: written after every charge the journal holds, before any close a
            # checkpoint saw; otherwise ended long before.
            "closed_before": 10**6 if unclosed else -1,
            "written_at": 200.0 if unclosed else 0.0,
        }
        for a, (_, _, before, unclosed) in sources.items()
        if before is not None
    }
    book = ledger_from(saved)
    checkpoint_usd = book.spent_usd

    recovery = reconcile(book, records(journal, in_flight), {"north": 1, "south": 1, "east": 1})

    for agent_id, (checkpoint, journaled, before, _) in sources.items():
        usage, cost = book.agent_usage(agent_id)
        accounted = [s[1] for s in (checkpoint, journaled) if s is not None] + [before or 0.0]
        assert cost == pytest.approx(max(accounted))  # the largest, so never less than any
        for s in (checkpoint, journaled):
            if s is not None:
                assert all(usage.to_dict()[f] >= s[0].to_dict()[f] for f in FIELDS)
    run_totals = [checkpoint_usd, journal.spent_usd]
    assert all(book.spent_usd >= total - 1e-9 for total in run_totals)
    lost = {call.agent_id for call in recovery.lost_calls}
    assert lost == {a for a, (_, _, before, unclosed) in sources.items() if before is not None and unclosed}
    for call in recovery.lost_calls:
        assert call.priced == "recorded" and call.in_config == (call.agent_id != "gone")
        assert call.cost_usd == pytest.approx(PRICES.cost(MODEL, call.usage))
    assert (recovery.notice is not None) == (bool(lost) or book.spent_usd - checkpoint_usd >= 0.005)


def test_the_journal_counts_a_forks_seeded_spend_and_every_charge_after_it_once() -> None:
    usage = TokenUsage(input_tokens=100, output_tokens=10, web_search_requests=1).to_dict()

    def charge(kind: str, agent: str, layer: int, usd: float, at: float) -> dict[str, Any]:
        return {"kind": kind, "agent_id": agent, "layer": layer, "cost_usd": usd, "usage": usage, "at": at}

    events = [
        {"kind": "run_started", "agents": [["north", 1, "N"], ["south", 2, "S"]],
         "seeds": {"north": {"cost_usd": 0.5, "searches": 3}}},
        charge("turn_completed", "north", 1, 0.25, 5.0),
        {"kind": "checkpoint_saved", "agent_id": "north", "checkpoint_id": "000004-north-t002"},
        charge("attempt_charged", "south", 2, 0.125, 7.0),
        {"kind": "run_started", "seeds": {"north": {"cost_usd": 0.75, "searches": 4}}},  # a resume: not again
        charge("context_compacted", "north", 1, 0.0625, 9.0),
    ]  # fmt: skip

    account = account_journal(events)

    north, south = account.agents["north"], account.agents["south"]
    assert (north.cost_usd, north.calls, north.usage.web_search_requests) == (0.8125, 2, 5)
    assert (north.last_charge_at, north.layer) == (9.0, 1)
    assert (south.cost_usd, south.calls, south.layer) == (0.125, 1, 2)
    assert account.saved == {"000004-north-t002": 0.75}  # the run's spend when it was saved


def test_an_entry_without_prices_is_charged_at_the_price_list_else_at_the_dearest_rates_known() -> None:
    usage = TokenUsage(input_tokens=10_000, output_tokens=2_000, web_search_requests=2)
    recorded = PRICES.rates(MODEL, usage)
    custom = PriceTable.from_config(
        PricingSettings(models={"house-model": ModelPrice(input=90.0, output=300.0)})
    )

    assert price_lost_call(PRICES, recorded, "removed-model", usage) == (cost_at(recorded, usage), "recorded")
    assert price_lost_call(PRICES, None, MODEL, usage) == (PRICES.cost(MODEL, usage), "catalogue")
    cost, priced = price_lost_call(custom, {"input": "cheap"}, "removed-model", usage)
    assert priced == "dearest"
    assert cost >= max(custom.cost(m, usage) for m in custom.models)  # never less than any model would cost
    assert cost == pytest.approx((10_000 * 90.0 + 2_000 * 300.0) / 1e6 + 2 * 10 / 1000)  # the house rates


def test_a_call_the_journal_saw_charged_after_its_entry_was_written_is_not_charged_again() -> None:
    book = ledger_from({"north": {"layer": 1, "usage": {}, "cost_usd": 0.1, "calls": 1, "closed": 1}})
    journal = JournalAccount(agents={"north": Account(layer=1, cost_usd=0.3, calls=2, last_charge_at=50.0)})
    entry = {
        "agent_id": "north", "layer": 1, "model": MODEL, "closed_before": 1, "written_at": 40.0,
        "worst_usage": TokenUsage(input_tokens=5).to_dict(), "spent_before": 0.1,
    }  # fmt: skip

    recovery = reconcile(book, records(journal, {"north": entry}), {"north": 1})

    assert recovery.lost_calls == ()
    assert book.agent_usage("north")[1] == pytest.approx(0.3)
    assert recovery.notice is not None and "$0.3000, not the $0.1000" in recovery.notice


def test_a_batched_call_is_charged_at_resume_only_when_its_batch_is_unknown() -> None:
    """In a batch the log names: the resume collects its result. Queued for a batch that never
    went out: nothing was sent. Written ahead for a batch whose id never came (a crash during its
    creation): it may have been sent, so its worst case, as a streamed call's."""

    def entry(agent: str) -> dict[str, Any]:
        return {
            "agent_id": agent, "layer": 1, "model": MODEL, "closed_before": 0, "written_at": 40.0, "turn": 2,
            "worst_usage": TokenUsage(input_tokens=5_000).to_dict(), "spent_before": 0.0, "batched": True,
        }  # fmt: skip

    batches = BatchRecords(
        batch_of={"in-t2": "msgbatch_1"},
        requests={
            "in-t2": BatchRequestRecord("in-t2", "in", 2),
            "cut-t2": BatchRequestRecord("cut-t2", "cut", 2),
        },
        unconfirmed={"cut-t2"},
    )
    agents = {"in": 1, "queued": 1, "cut": 1}
    found = RunRecords(
        journal=JournalAccount(), in_flight={a: entry(a) for a in agents}, restored_from=None,
        damaged=(), missing=(), batches=batches,
    )  # fmt: skip

    recovery = reconcile(ledger_from({}), found, agents)

    assert [call.agent_id for call in recovery.lost_calls] == ["cut"]
