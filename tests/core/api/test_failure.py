"""A failure is read from what happened, whatever wraps it: the SDK's releases wrap transport
errors differently (2.17 wraps a stream dropped mid-way in ``APIConnectionError``), and so may
middleware or our own code. The same dropped stream, raw, wrapped once and wrapped twice, must be
classified the same and charged the same."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from hypothesis import given
from hypothesis import strategies as st

from core.api.attempt import AttemptProgress, Outcome
from core.api.failure import Ending, StreamIncomplete, causes, failure_of, outcome_of
from core.api.retry import classify
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
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Research sodium-ion batteries for grid storage"}],
}
HTTP_REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")


def context() -> AgentContext:
    return AgentContext(EventBus(), "r", "a", 1)


def sdk_wrapped(error: BaseException) -> anthropic.APIConnectionError:
    """As the SDK wraps a transport error (``raise APIConnectionError(...) from error``)."""
    wrapper = anthropic.APIConnectionError(message=f"Connection failed: {error}", request=HTTP_REQUEST)
    wrapper.__cause__ = error
    return wrapper


def app_wrapped(error: BaseException) -> RuntimeError:
    """As middleware or a caller might wrap it once more."""
    wrapper = RuntimeError("the call failed")
    wrapper.__cause__ = error
    return wrapper


async def dropped_stream() -> tuple[BaseException, AttemptProgress]:
    """A real stream the simulator drops mid-way (after ``message_start``), as the SDK raised it."""
    settings = SimulatorSettings(seed=3, faults={"disconnect": 1.0}, stream_cut="middle")
    async with Simulator(settings) as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim", max_retries=0)
        progress = AttemptProgress()
        with pytest.raises(Exception) as caught:
            await stream_call(AnthropicTransport(client), REQUEST, context(), 1, progress)
        await client.close()
    return caught.value, progress


def charged(error: BaseException, progress: AttemptProgress) -> tuple[Outcome, float, TokenUsage]:
    book = BudgetLedger(BudgetSettings(), PriceTable.default(), n_layers=1)
    reservation = book.reserve(
        agent_id="a", layer=1, model=MODEL, input_tokens=2_000, max_tokens=1024, max_searches=0
    )
    outcome = outcome_of(error, progress)
    charge, cost = book.charge_failed(reservation, progress, outcome)
    return outcome, cost, charge.usage


async def test_a_dropped_stream_raw_wrapped_once_and_twice_is_a_broken_stream_charged_the_same() -> None:
    as_raised, progress = await dropped_stream()
    assert progress.responded and progress.start_usage is not None  # it had answered
    raw = next(link for link in reversed(list(causes(as_raised))) if isinstance(link, httpx2.HTTPError))
    once = sdk_wrapped(raw)
    twice = app_wrapped(sdk_wrapped(raw))

    results = []
    for error in (as_raised, raw, once, twice):
        info = classify(error, progress)
        assert info is not None, error
        assert (info.kind, info.retryable) == ("stream_broken", True), error
        results.append(charged(error, progress))
    assert all(result == results[0] for result in results)
    outcome, cost, _ = results[0]
    assert outcome is Outcome.STOPPED and cost > 0  # bounded from what streamed, not nothing


# Failures whose ending is known, and the ending each must keep under any wrapping.
ENDINGS: list[tuple[BaseException, Ending]] = [
    (httpx2.RemoteProtocolError("peer closed connection", request=HTTP_REQUEST), Ending.BROKEN),
    (httpx2.ReadError("connection reset", request=HTTP_REQUEST), Ending.BROKEN),
    (StreamIncomplete("no message_stop"), Ending.BROKEN),
    (httpx2.ReadTimeout("silent", request=HTTP_REQUEST), Ending.TIMED_OUT),
    (httpx2.ConnectError("refused", request=HTTP_REQUEST), Ending.NOT_SENT),
    (httpx2.ConnectTimeout("slow", request=HTTP_REQUEST), Ending.NOT_SENT),
    (httpx2.PoolTimeout("pool", request=HTTP_REQUEST), Ending.NOT_SENT),
]
WRAPPERS = [sdk_wrapped, app_wrapped]


@given(
    case=st.sampled_from(ENDINGS),
    wrapping=st.lists(st.sampled_from(WRAPPERS), max_size=3),
    begun=st.booleans(),
    started=st.booleans(),
)
def test_wrapping_never_changes_the_classification_or_the_outcome(
    case: tuple[BaseException, Ending], wrapping: list[Any], begun: bool, started: bool
) -> None:
    error, ending = case
    progress = AttemptProgress(sent=True, responded=begun or started)
    if started:
        progress.start_usage = TokenUsage(input_tokens=100)
    wrapped: BaseException = error
    for wrap in wrapping:
        wrapped = wrap(wrapped)
    failure = failure_of(wrapped)
    assert failure is not None and failure.ending is ending
    info, bare = classify(wrapped, progress), classify(error, progress)
    assert info is not None and bare is not None
    assert (info.kind, info.retryable, info.fatal_for_run, info.status_code) == (
        bare.kind,
        bare.retryable,
        bare.fatal_for_run,
        bare.status_code,
    )
    assert str(error) in info.message  # what failed is still said, under any wrapping
    assert outcome_of(wrapped, progress) is outcome_of(error, progress)


def test_an_error_raised_while_handling_a_failure_is_not_taken_for_it() -> None:
    """A full disk while handling a dropped stream is a disk error: only explicit causes count."""
    try:
        try:
            raise httpx2.RemoteProtocolError("peer closed connection", request=HTTP_REQUEST)
        except httpx2.RemoteProtocolError:
            raise OSError(28, "No space left on device") from None
    except OSError as disk_error:
        assert failure_of(disk_error) is None
        assert classify(disk_error, AttemptProgress(sent=True, responded=True)) is None


def test_cancellation_is_no_api_failure() -> None:
    assert failure_of(asyncio.CancelledError()) is None
