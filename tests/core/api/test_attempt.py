"""What an attempt received, and what the API may have done with it, read from how it ended.

The streamed checks run the real SDK against the simulator, whose faults cut a stream at any frame
(before ``message_start``, mid-text, after a search result, in tool input, after ``message_delta``)
and which records what the cut request billed: the charge read from the attempt's progress must
never be less.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.api.attempt import AttemptProgress, Outcome
from core.api.failure import StreamIncomplete, outcome_of
from core.api.sdk import AnthropicTransport
from core.api.streaming import AgentContext, stream_call
from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.events import EventBus
from core.simulator import Simulator, SimulatorSettings
from core.usage import TokenUsage

MODEL = "claude-sonnet-5"
REQUEST: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 2048,
    "messages": [{"role": "user", "content": "Research sodium-ion batteries for grid storage"}],
    "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
}
CLIENT = AsyncAnthropic(api_key="x", base_url="http://127.0.0.1:9")
HTTP_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")


def context() -> AgentContext:
    return AgentContext(EventBus(), "r", "a", 1)


def status_error(status: int, error_type: str = "overloaded_error") -> anthropic.APIStatusError:
    body = {"type": "error", "error": {"type": error_type, "message": "x"}}
    response = httpx2.Response(status, json=body, request=HTTP_REQUEST)
    return CLIENT._make_status_error("x", body=body, response=response)


def wrapped(cls: type[anthropic.APIConnectionError], cause: BaseException) -> BaseException:
    error = cls(request=HTTP_REQUEST)
    error.__cause__ = cause
    return error


STARTED = AttemptProgress(sent=True, start_usage=TokenUsage(input_tokens=10))
WAITING = AttemptProgress(sent=True)


@pytest.mark.parametrize(
    ("error", "progress", "expected"),
    [
        (asyncio.CancelledError(), AttemptProgress(), Outcome.NOT_RUN),  # cancelled before sending
        (status_error(529), WAITING, Outcome.NOT_RUN),
        (status_error(429, "rate_limit_error"), WAITING, Outcome.NOT_RUN),
        (status_error(200), WAITING, Outcome.NOT_RUN),  # error event before message_start
        (status_error(200), STARTED, Outcome.STOPPED),  # error event mid-stream
        (wrapped(anthropic.APIConnectionError, httpx2.ConnectError("refused")), WAITING, Outcome.NOT_RUN),
        (wrapped(anthropic.APITimeoutError, httpx2.ConnectTimeout("slow")), WAITING, Outcome.NOT_RUN),
        # a base URL the client cannot address: nothing left this machine
        (wrapped(anthropic.APIConnectionError, httpx2.UnsupportedProtocol("x")), WAITING, Outcome.NOT_RUN),
        (wrapped(anthropic.APIConnectionError, httpx2.LocalProtocolError("x")), WAITING, Outcome.NOT_RUN),
        (wrapped(anthropic.APITimeoutError, httpx2.ReadTimeout("silent")), WAITING, Outcome.UNKNOWN),
        (httpx2.ReadTimeout("silent mid-stream"), STARTED, Outcome.UNKNOWN),
        (httpx2.RemoteProtocolError("peer closed"), STARTED, Outcome.STOPPED),
        (httpx2.RemoteProtocolError("peer closed"), WAITING, Outcome.UNKNOWN),
        (StreamIncomplete("no message_stop"), STARTED, Outcome.STOPPED),
        (asyncio.CancelledError(), WAITING, Outcome.UNKNOWN),
        (asyncio.CancelledError(), STARTED, Outcome.UNKNOWN),  # killed: the server may go on
        (ValueError("a bug of ours"), STARTED, Outcome.UNKNOWN),
    ],
)
def test_how_an_attempt_ended_says_what_the_api_may_have_done(
    error: BaseException, progress: AttemptProgress, expected: Outcome
) -> None:
    assert outcome_of(error, progress) is expected


async def test_a_whole_stream_is_observed_block_by_block() -> None:
    async with Simulator(SimulatorSettings(seed=4, pause_turn_probability=0.0)) as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim", max_retries=0)
        progress = AttemptProgress()
        result = await stream_call(AnthropicTransport(client), REQUEST, context(), 1, progress)
    assert progress.sent and progress.request_id == result.request_id
    assert progress.final_usage == result.usage
    assert progress.blocks == len(result.content)
    issued = sum(1 for b in result.content if b["type"] == "server_tool_use")
    assert progress.searches == issued == result.usage.web_search_requests > 0
    assert progress.results == issued and progress.search_errors == 0
    assert progress.output_bytes >= result.usage.output_tokens > 0


def ledger() -> BudgetLedger:
    return BudgetLedger(BudgetSettings(), PriceTable.default(), n_layers=1)


async def cut_attempt(seed: int, fault: str) -> tuple[float, float, TokenUsage, TokenUsage]:
    """One attempt of a stream broken at a random frame: (charged, billed) dollars and usages."""
    faults = {fault: 1.0}
    settings = SimulatorSettings(seed=seed, faults=faults, stream_cut="anywhere", pause_turn_probability=0.0)
    book = ledger()
    reservation = book.reserve(
        agent_id="a", layer=1, model=MODEL, input_tokens=2_000, max_tokens=2048, max_searches=3
    )
    async with Simulator(settings) as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim", max_retries=0)
        progress = AttemptProgress()
        with pytest.raises((anthropic.APIError, httpx2.HTTPError, StreamIncomplete)) as caught:
            await stream_call(AnthropicTransport(client), REQUEST, context(), 1, progress)
    [record] = [r for r in sim.stats.recent if r.path == "/v1/messages"]
    billed = TokenUsage.from_api(record.usage) if record.usage is not None else TokenUsage()
    charge, cost = book.charge_failed(reservation, progress, outcome_of(caught.value, progress))
    return cost, book.prices.cost(MODEL, billed), charge.usage, billed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 100_000), fault=st.sampled_from(["stream_error", "disconnect"]))
def test_a_stream_cut_anywhere_is_charged_at_least_what_it_billed(seed: int, fault: str) -> None:
    charged, owed, usage, billed = asyncio.run(cut_attempt(seed, fault))
    assert charged >= owed - 1e-12, (usage, billed)
    assert usage.web_search_requests >= billed.web_search_requests
    assert usage.output_tokens >= billed.output_tokens
    assert usage.total_input_tokens >= billed.total_input_tokens
