"""429s are retried for as long as the time budget allows, each wait as long as the server asks.

A run of rate limits is the server saying "later", not "broken": counting them against
``max_attempts`` made agents give up after 8 of them (about 40 s) with 900 s of budget left.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.api.retry import RequestGate, RetriesExhausted, RetryPolicy
from tests.core.api.test_retry import AutoClock, Script, error_body, run, status_error
from tests.core.api.test_retry import settings as retry_settings


def rate_limited(retry_after: float) -> BaseException:
    return status_error(429, error_body("rate_limit_error", "slow down"), {"retry-after": str(retry_after)})


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=60),
    retry_after=st.floats(min_value=0.5, max_value=30.0),
    max_attempts=st.integers(min_value=1, max_value=8),
    budget=st.floats(min_value=10.0, max_value=900.0),
)
async def test_rate_limits_are_bounded_by_time_not_by_count(
    count: int, retry_after: float, max_attempts: int, budget: float
) -> None:
    clock = AutoClock()
    script = Script(clock, *[rate_limited(retry_after) for _ in range(count)])
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    retry = retry_settings(max_attempts=max_attempts, max_total_seconds=budget)
    began = clock.now
    try:
        result, _recorder = await run(script, clock, retry, gate)
    except RetriesExhausted as exhausted:
        # Given up only because the next wait would end past the budget, never for the count.
        assert exhausted.info.kind == "rate_limit"
        jitter = RetryPolicy.RETRY_AFTER_JITTER_S  # a wait is the server's plus at most this
        assert clock.now - began + retry_after + jitter >= budget - 1e-6
        assert len(script.started) < count + 1
    else:
        assert result == "ok" and len(script.started) == count + 1
        assert clock.now - began <= budget
    starts = [at for _, at in script.started]
    assert all(later - earlier >= retry_after - 1e-6 for earlier, later in itertools.pairwise(starts))


async def test_eight_429s_no_longer_end_an_agent_with_time_left() -> None:
    clock = AutoClock()
    script = Script(clock, *[rate_limited(5.0) for _ in range(20)])
    result, _ = await run(script, clock, retry_settings(max_attempts=8, max_total_seconds=900.0))
    assert result == "ok" and len(script.started) == 21


async def test_other_errors_still_count_attempts() -> None:
    """5xx count (a 529 did before issue 24, which makes an overload a wait like a 429)."""
    clock = AutoClock()
    script = Script(clock, *[status_error(500, error_body("api_error", "oops")) for _ in range(10)])
    with pytest.raises(RetriesExhausted):
        await run(script, clock, retry_settings(max_attempts=3))
    assert len(script.started) == 3
