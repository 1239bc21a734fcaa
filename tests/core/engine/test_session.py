"""The turn loop over a replay transport: recorded API exchanges, no HTTP.

Each test runs one agent's session on sequences recorded from real API responses (see
``tests/core/api/recorded.py``) and checks the loop's whole cycle: reserve, write ahead, send,
fold, settle or charge, checkpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.api.replay import Exchange, ReplayTransport
from core.api.retry import RequestGate, RetryPolicy
from core.api.streaming import AgentContext
from core.api.transport import (
    ApiStatus,
    CallResult,
    Completed,
    Ending,
    MessageStarted,
    TextDelta,
    TransportError,
)
from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable
from core.config.loader import load_config
from core.control import AgentStatus
from core.engine.agent import AgentHandle
from core.engine.compaction import NOTE_PREFIX, SUMMARY_PROMPT
from core.engine.request import user_message
from core.engine.session import AgentSession, SessionState
from core.events import (
    AttemptAbandoned,
    AttemptCharged,
    ContextCompacted,
    Event,
    EventBus,
    RetryScheduled,
    TextStreamed,
    TurnCompleted,
)
from core.lifecycle import AgentRow, saved_form
from core.usage import TokenUsage
from tests.core import programs
from tests.core.api.recorded import cut_response, http_responses, record, recorded, with_stop_reason

TEXT_STREAM = ("two-429s-then-stream.json", 2)  # a real streamed answer: "[12345,67890]", end_turn
SEARCH_STREAM = "web-search-stream-synthetic.sse"  # a streamed search, its results, then text


@dataclass
class Loop:
    session: AgentSession
    handle: AgentHandle  # the agent's row: its turns, searches, dollars and retries
    transport: ReplayTransport
    ledger: BudgetLedger
    gate: RequestGate
    events: list[Event] = field(default_factory=list)
    saves: list[dict[str, Any]] = field(default_factory=list)  # what each checkpoint saved
    written_ahead: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def loop(
    tmp_path: Path,
    exchanges: list[Exchange],
    *,
    max_turns: int = 1,
    state: SessionState | None = None,
    turns_done: int = 0,
) -> Loop:
    """One agent's session wired as the orchestrator wires it: its events go through its handle."""
    retry = {"base_delay_s": 0.001, "max_delay_s": 0.005}
    data = programs.program([programs.agent("solo")], max_turns=max_turns, execution={"retry": retry})
    config = load_config(programs.write(tmp_path, data))
    [agent] = config.agents()
    ledger = BudgetLedger(
        config.execution_settings.budget, PriceTable.from_config(config.pricing), n_layers=1
    )
    transport = ReplayTransport(exchanges)
    gate = RequestGate(4)
    bus = EventBus()
    row = AgentRow(agent.id, agent.layer, status=AgentStatus.RUNNING, turn=turns_done, started=True)
    handle = AgentHandle(agent, "run", bus.publish, state, row)
    session = AgentSession(
        agent=agent,
        config=config,
        transport=transport,
        context=AgentContext(bus, "run", agent.id, agent.layer, sink=handle.apply),
        ledger=ledger,
        policy=RetryPolicy(config.execution_settings.retry),
        gate=gate,
        control=handle,
        prior_reports={},
        state=state,
    )
    result = Loop(session, handle, transport, ledger, gate)
    bus.listen(result.events.append)

    async def save(_: Any, state: SessionState, ending: AgentStatus | None) -> None:
        result.saves.append({**state.counters(), **saved_form(handle.row)})

    async def write_ahead(agent_id: str, entry: dict[str, Any]) -> None:
        assert agent_id == "solo"
        result.written_ahead.append({**entry, "sent_before": len(transport.requests)})

    session.save, session.write_ahead = save, write_ahead
    return result


async def text_stream() -> Exchange:
    [exchange] = await record([http_responses(TEXT_STREAM[0])[TEXT_STREAM[1]]])
    return exchange


def result_of(exchange: Exchange) -> Any:
    completed = exchange.events[-1]
    assert isinstance(completed, Completed)
    return completed.result


def assert_books_balance(run: Loop) -> None:
    """Nothing left reserved; the agent's dollars are the ledger's, charges and turns together."""
    paid = (AttemptCharged, TurnCompleted, ContextCompacted)
    charged = sum(e.cost_usd for e in run.events if isinstance(e, paid))
    assert run.ledger.reserved_usd == 0
    assert (
        run.handle.row.cost_usd == pytest.approx(run.ledger.agent_usage("solo")[1]) == pytest.approx(charged)
    )


async def test_a_paused_turn_is_continued_with_its_content_resent_unchanged(tmp_path: Path) -> None:
    [paused] = await record([with_stop_reason(SEARCH_STREAM, "pause_turn")])
    answer = await text_stream()
    run = loop(tmp_path, [paused, answer])

    outcome = await run.session.run()

    assert outcome.status is AgentStatus.COMPLETED and run.transport.pending == 0
    first, second = run.transport.requests
    assert second["messages"][-1] == {"role": "assistant", "content": result_of(paused).content}
    assert second["messages"][:-1] == first["messages"]  # the same user turn, not a new prompt
    assert (
        [t["type"] for t in second["tools"]] == [t["type"] for t in first["tools"]] == ["web_search_20250305"]
    )
    turns = run.of(TurnCompleted)
    assert [(t.turn, t.stop_reason, t.paused_continuation) for t in turns] == [
        (1, "pause_turn", False),
        (2, "end_turn", True),  # the call that continued the paused turn
    ]
    state = run.session.state
    row = run.handle.row
    assert row.turn == 2 and state.pending is None
    assert row.searches == sum(t.usage.web_search_requests for t in turns)  # as billed
    assert state.messages[-2:] == [
        {"role": "assistant", "content": result_of(paused).content},
        {"role": "assistant", "content": result_of(answer).content},
    ]
    # Written ahead before each send, checkpointed after each call.
    assert [(w["turn"], w["closed_before"], w["sent_before"]) for w in run.written_ahead] == [
        (1, 0, 0),
        (2, 1, 1),
    ]
    assert [s["api_turns"] for s in run.saves] == [1, 2]
    assert_books_balance(run)


async def test_a_stream_cut_mid_way_is_charged_what_it_streamed_and_retried(tmp_path: Path) -> None:
    body = http_responses(TEXT_STREAM[0])[TEXT_STREAM[1]].content
    [cut] = await record([cut_response(body, b"event: content_block_stop")])
    answer = await text_stream()
    run = loop(tmp_path, [cut, answer])

    outcome = await run.session.run()

    assert outcome.status is AgentStatus.COMPLETED
    streamed = "".join(e.text for e in cut.events if isinstance(e, TextDelta))
    assert streamed == "[12345,67890]"  # every delta came; the block never closed
    [retry] = run.of(RetryScheduled)
    assert (retry.error_kind, retry.attempt) == ("stream_broken", 1)
    [abandoned] = run.of(AttemptAbandoned)
    assert abandoned.chars == len(streamed)
    [charge] = run.of(AttemptCharged)
    assert (charge.outcome, charge.basis) == ("stopped", "received") and charge.cost_usd > 0
    assert charge.usage.input_tokens >= 135  # message_start's input, as billed
    assert (run.handle.row.retries, run.handle.row.turn) == (1, 1)
    assert run.session.state.messages[-1] == {"role": "assistant", "content": result_of(answer).content}
    # The charge was saved before the retry was sent (a crash then cannot lose it).
    assert [(s["api_turns"], s["cost_usd"] > 0) for s in run.saves] == [(0, True), (1, True)]
    assert [(w["closed_before"], w["sent_before"]) for w in run.written_ahead] == [(0, 0), (1, 1)]
    assert_books_balance(run)


async def test_a_kill_during_a_call_charges_what_the_api_may_still_bill(tmp_path: Path) -> None:
    answer = await text_stream()
    begun = tuple(
        answer.events[: next(i for i, e in enumerate(answer.events) if isinstance(e, TextDelta)) + 1]
    )
    assert any(isinstance(e, MessageStarted) for e in begun)
    run = loop(tmp_path, [Exchange(begun, holds=True)])

    task = asyncio.create_task(run.session.run())
    await asyncio.wait_for(run.transport.holding.wait(), timeout=30)
    assert len(run.written_ahead) == 1 and run.ledger.reserved_usd > 0  # in flight, written ahead
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    [charge] = run.of(AttemptCharged)
    assert (charge.outcome, charge.basis) == ("unknown", "worst_case") and charge.cost_usd > 0
    assert not run.of(TurnCompleted) and not run.of(RetryScheduled)
    assert run.session.unsaved_charge  # the handle saves it as the agent ends
    killed = run.session.killed()
    assert killed.status is AgentStatus.KILLED and run.handle.row.turn == 0
    assert_books_balance(run)


async def test_a_429_then_success_waits_charges_nothing_and_completes(tmp_path: Path) -> None:
    exchanges = await recorded("two-429s-then-stream.json")  # two real 429s, then the stream
    run = loop(tmp_path, exchanges)

    outcome = await run.session.run()

    assert outcome.status is AgentStatus.COMPLETED and len(run.transport.requests) == 3
    assert run.transport.requests[0] == run.transport.requests[1] == run.transport.requests[2]
    assert [(r.error_kind, r.status_code, r.attempt) for r in run.of(RetryScheduled)] == [
        ("rate_limit", 429, 1),
        ("rate_limit", 429, 2),
    ]
    assert not run.of(AttemptCharged)  # an error status is never billed
    assert run.gate.limit < run.gate.max_concurrency  # the rate limit slowed everyone down
    [turn] = run.of(TurnCompleted)
    assert turn.usage == result_of(exchanges[2]).usage and turn.cost_usd > 0
    assert run.ledger.spent_usd == pytest.approx(turn.cost_usd)
    assert "".join(e.text for e in run.of(TextStreamed)) == "[12345,67890]"
    assert len(run.written_ahead) == 3  # each attempt reserved and written ahead again
    assert run.handle.row.retries == 2
    assert_books_balance(run)


async def test_a_prompt_too_long_is_compacted_through_the_transports_unstreamed_call(tmp_path: Path) -> None:
    """A 400 "prompt is too long" summarises the oldest turns (``transport.create``) and sends again."""
    researched = [
        user_message("brief"),
        {"role": "assistant", "content": [{"type": "text", "text": "Sodium-ion cells cost less."}]},
        user_message("follow up"),
        {"role": "assistant", "content": [{"type": "text", "text": "Grid projects are growing."}]},
    ]
    state = SessionState(messages=researched, plan_index=2)
    too_long = ApiStatus(400, "prompt is too long: 210000 tokens > 200000 maximum", "invalid_request_error")
    summary = CallResult(
        content=[{"type": "text", "text": "Cheaper cells; growing grid projects."}],
        stop_reason="end_turn",
        usage=TokenUsage(input_tokens=900, output_tokens=120),
        request_id="req_summary",
    )
    answer = await text_stream()
    exchanges = [
        Exchange(error=TransportError(Ending.STATUS, too_long.message, too_long)),
        Exchange((Completed(summary),)),
        answer,
    ]
    run = loop(tmp_path, exchanges, max_turns=3, state=state, turns_done=2)

    outcome = await run.session.run()

    assert outcome.status is AgentStatus.COMPLETED and run.transport.pending == 0
    refused, compaction, sent = run.transport.requests
    assert compaction["system"] == SUMMARY_PROMPT and "Grid projects are growing." in str(
        compaction["messages"]
    )
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][0]["text"].startswith(NOTE_PREFIX + "Cheaper cells")
    assert sent["messages"][2]["content"][0]["text"] == refused["messages"][-1]["content"][0]["text"]
    [compacted] = run.of(ContextCompacted)
    assert compacted.dropped_messages == 3 and compacted.usage == summary.usage and compacted.cost_usd > 0
    assert not run.of(AttemptCharged)  # the 400 was never billed
    assert run.session.state.messages[-1] == {"role": "assistant", "content": result_of(answer).content}
    assert_books_balance(run)
