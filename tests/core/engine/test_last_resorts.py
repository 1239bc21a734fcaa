"""The last agent running may go on where the caps allow only a smaller worst case: a call sent
without cache breakpoints (its prompt priced at the plain input price, which is all such a
request can be billed), then a research turn without a search; never while another agent could
use the money, never for a ``pause_turn`` continuation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.budget.ledger import REPORT_CACHE_WRITE, CallRequest, Reservation, worst_case
from core.budget.sizing import Size
from core.config.model import BudgetSettings
from core.control import AgentStatus
from core.engine.request import user_message
from core.engine.session import SessionState
from core.usage import TokenUsage
from tests.core.api.recorded import record, with_stop_reason
from tests.core.engine.test_session import SEARCH_STREAM, Loop, loop, text_stream


def markers(value: Any) -> int:
    """How many ``cache_control`` keys ``value`` holds, at any depth."""
    if isinstance(value, dict):
        return int("cache_control" in value) + sum(markers(v) for v in value.values())
    if isinstance(value, list):
        return sum(markers(v) for v in value)
    return 0


def asked(run: Loop) -> list[CallRequest]:
    """Record every request the session asks the ledger for."""
    requests: list[CallRequest] = []
    acquire = run.ledger.acquire

    async def recording(r: CallRequest, **kw: Any) -> Reservation:
        requests.append(r)
        return await acquire(r, **kw)

    run.ledger.acquire = recording  # type: ignore[method-assign]
    return requests


def step_usd(run: Loop, r: CallRequest, size: Size) -> float:
    """The call at ``size`` with its report held, priced as the ledger prices them."""
    ledger = run.ledger
    cache = r.cache_write if size.cached else "none"
    call = worst_case(ledger.prices, r.model, input_tokens=r.input_tokens, max_tokens=size.max_tokens,
                      max_searches=size.searches, search_input_tokens=ledger.search_input_tokens,
                      cache_write=cache)  # fmt: skip
    assert r.report_input_tokens is not None
    growth = r.report_growth[min(size.searches, len(r.report_growth) - 1)] if r.report_growth else 0
    grown = r.report_input_tokens + growth + size.max_tokens + size.searches * ledger.search_input_tokens
    hold = worst_case(ledger.prices, r.model, input_tokens=grown, max_tokens=size.report_tokens,
                      max_searches=0, cache_write=REPORT_CACHE_WRITE)  # fmt: skip
    return call.usd + hold.usd


async def probe(
    tmp_path: Path,
    state: SessionState | None = None,
    *,
    searched: int = 0,
    max_turns: int = 1,
    last: bool = True,
) -> CallRequest:
    """The first request a session asks the ledger for, with no cap."""
    answers = [await text_stream() for _ in range(max_turns)]
    run = loop(tmp_path, answers, state=state, max_turns=max_turns)
    run.handle.row = replace(run.handle.row, searches=searched)
    run.session.last_running = lambda: last
    requests = asked(run)
    await run.session.run()
    return requests[0]


def capped(run: Loop, cap: float, *, last: bool = True) -> None:
    run.ledger.settings = BudgetSettings(max_cost_usd=cap, reserve_for_later_layers=0.0)
    run.session.last_running = lambda: last


def floors(r: CallRequest, searches: int, *, cached: bool) -> Size:
    return Size(r.min_max_tokens or 0, searches, r.min_report_tokens or 0, cached)


async def test_the_last_agent_sends_a_call_that_fits_only_without_the_cache_with_no_breakpoint(
    tmp_path: Path,
) -> None:
    r = await probe(tmp_path / "probe")
    assert r.cache_write == "5m" and r.cache_optional and r.min_searches == 1
    prices = loop(tmp_path / "prices", [])
    cached = step_usd(prices, r, floors(r, 1, cached=True))
    plain = step_usd(prices, r, floors(r, 1, cached=False))
    assert plain < cached
    cap = (plain + cached) / 2  # the floors fit without the cache only

    [searched] = await record([with_stop_reason(SEARCH_STREAM, "end_turn")])
    run = loop(tmp_path / "last", [searched])
    capped(run, cap)
    outcome = await run.session.run()

    [sent] = run.transport.requests
    assert markers(sent) == 0, "a call granted without the cache sends no breakpoint"
    assert sent["tools"][0]["max_uses"] >= 1 and "tool_choice" not in sent
    [ahead] = run.written_ahead
    worst = TokenUsage.from_dict(ahead["worst_usage"])
    # Its worst case: every prompt token at the plain input price, no cache write or read.
    assert worst.input_tokens > 0
    assert worst.cache_write_5m_tokens == worst.cache_write_1h_tokens == worst.cache_read_input_tokens == 0
    assert outcome.status is AgentStatus.COMPLETED
    assert run.ledger.spent_usd <= cap

    # Not the last agent running: the same cap stops it before it sends anything.
    other = loop(tmp_path / "not-last", [])
    capped(other, cap, last=False)
    outcome = await other.session.run()
    assert other.transport.requests == [] and outcome.status is AgentStatus.BUDGET_EXHAUSTED


def researched() -> SessionState:
    """An agent one research turn in (of a plan of four: three research turns and the report)."""
    answer = {"role": "assistant", "content": [{"type": "text", "text": "Found."}]}
    return SessionState(messages=[user_message("brief"), answer], plan_index=1)


async def test_the_last_agent_researches_without_a_search_once_in_a_row_when_not_even_one_fits(
    tmp_path: Path,
) -> None:
    r = await probe(tmp_path / "probe", researched(), searched=2, max_turns=4)
    assert r.min_searches == 0 and r.max_searches > 0
    prices = loop(tmp_path / "prices", [])
    one = step_usd(prices, r, floors(r, 1, cached=False))
    none = step_usd(prices, r, floors(r, 0, cached=False))
    cap = (one + none) / 2  # one search does not fit even without the cache; none does

    run = loop(tmp_path / "last", [await text_stream(), await text_stream()], state=researched(), max_turns=4)
    run.handle.row = replace(run.handle.row, searches=2)
    capped(run, cap)
    requests = asked(run)
    outcome = await run.session.run()

    searchless, report = run.transport.requests
    assert searchless.get("tool_choice") == {"type": "none"}, "the turn went with no search"
    assert requests[0].min_searches == 0
    # Once in a row: the next research call had to fit a search; it did not, so research stopped
    # and the agent wrote its report from its hold.
    assert not requests[1].report and requests[1].min_searches == 1
    assert requests[2].report and report["messages"][-1]["role"] == "user"
    assert outcome.status is AgentStatus.BUDGET_EXHAUSTED and "Partial report" not in outcome.report
    assert run.ledger.spent_usd <= cap


@pytest.mark.parametrize(
    ("why", "pending", "searched", "last"),
    [
        ("a paused turn is continued with its tool", "pause_turn", 2, True),
        ("an agent that has not searched does not begin without a search", None, 0, True),
        ("another agent could still use the money", None, 2, False),
    ],
)
async def test_no_research_turn_goes_without_a_search_when(
    tmp_path: Path, why: str, pending: str | None, searched: int, last: bool
) -> None:
    state = researched()
    if pending == "pause_turn":
        paused = [{"type": "text", "text": "Searching."}]
        state.messages.append({"role": "assistant", "content": paused})
        state.pending = pending
    r = await probe(tmp_path, state, searched=searched, max_turns=4, last=last)
    assert not r.report and r.max_searches > 0
    assert r.min_searches == 1, why
    assert r.cache_optional is last
