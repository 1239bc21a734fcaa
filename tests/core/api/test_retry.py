"""core/retry: what is retried, how long we wait, and the gate every agent passes through."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import pytest
from aiohttp import web

from core.api.attempt import AttemptProgress
from core.api.failure import StreamIncomplete
from core.api.retry import (
    AUTH_MESSAGE,
    ONE_REQUEST,
    ErrorInfo,
    NonRetryableError,
    RequestCost,
    RequestGate,
    RetriesExhausted,
    RetryPolicy,
    call_with_retries,
    classify,
    first_call_refusal,
    parse_retry_after,
)
from core.config.model import RetrySettings

URL = "http://x/v1/messages"
CLIENT = anthropic.AsyncAnthropic(api_key="k")


def request() -> httpx2.Request:
    return httpx2.Request("POST", URL)


def error_body(error_type: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": "req_body"}


def status_error(
    status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> anthropic.APIStatusError:
    """Exactly the exception class the SDK would raise for this response."""
    response = httpx2.Response(status, headers=headers or {}, json=body, request=request())
    return CLIENT._make_status_error(f"Error code: {status} - {body}", body=body, response=response)


def info(
    kind: str = "server_error", *, retryable: bool = True, retry_after: float | None = None
) -> ErrorInfo:
    return ErrorInfo(kind, 500, retryable, False, retry_after, None, "boom", None)


class FakeClock:
    """A monotonic clock that only moves when the test says so; ``sleep`` waits for it."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append((self.now + seconds, future))
        await future

    def next_due(self) -> float | None:
        """The earliest moment a sleeper is waiting for, if any."""
        due = [t for t, f in self._timers if not f.done()]
        return min(due) if due else None

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [f for t, f in self._timers if t <= self.now]
        self._timers = [(t, f) for t, f in self._timers if t > self.now]
        for future in due:
            if not future.done():
                future.set_result(None)
        await settle()


class AutoClock(FakeClock):
    """Sleeping simply moves time forward: for single-caller retry loops."""

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def drive(clock: FakeClock, tasks: list[asyncio.Task[Any]]) -> None:
    """Run the tasks to the end, moving the fake clock from one sleeper's deadline to the next."""
    while True:
        await settle()
        if all(task.done() for task in tasks):
            break
        due = clock.next_due()
        assert due is not None, "stuck: tasks wait but nobody sleeps"
        await clock.advance(max(0.0, due - clock.now) + 1e-9)
    for task in tasks:
        task.result()


def settings(**overrides: Any) -> RetrySettings:
    values: dict[str, Any] = {"max_attempts": 5, "max_total_seconds": 900.0, "base_delay_s": 1.0}
    values.update(overrides)
    return RetrySettings(**values)


# --- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "kind", "retryable", "sdk_class"),
    [
        (400, "invalid_request_error", "bad_request", False, anthropic.BadRequestError),
        (403, "permission_error", "permission", False, anthropic.PermissionDeniedError),
        (404, "not_found_error", "not_found", False, anthropic.NotFoundError),
        (413, "request_too_large", "too_large", False, anthropic.RequestTooLargeError),
        (402, "billing_error", "other", False, anthropic.APIStatusError),
        (409, "conflict_error", "other", False, anthropic.ConflictError),
        (422, "invalid_request_error", "other", False, anthropic.UnprocessableEntityError),
        (429, "rate_limit_error", "rate_limit", True, anthropic.RateLimitError),
        (529, "overloaded_error", "overloaded", True, anthropic.OverloadedError),
        (500, "api_error", "server_error", True, anthropic.InternalServerError),
        (502, "api_error", "server_error", True, anthropic.InternalServerError),
        (503, "api_error", "server_error", True, anthropic.InternalServerError),
        (504, "timeout_error", "server_error", True, anthropic.InternalServerError),
        (501, "api_error", "server_error", False, anthropic.InternalServerError),
    ],
)
def test_status_errors_are_classified_by_status(
    status: int, error_type: str, kind: str, retryable: bool, sdk_class: type[Exception]
) -> None:
    exc = status_error(status, error_body(error_type, f"the API says {status}"), {"request-id": "req_hdr"})
    assert isinstance(exc, sdk_class)
    result = classify(exc)
    assert result is not None
    assert (result.kind, result.status_code, result.retryable) == (kind, status, retryable)
    assert result.fatal_for_run is False
    assert result.message == f"the API says {status}"
    assert result.request_id == "req_hdr"
    assert result.error_type == error_type


def test_401_stops_the_run_and_names_the_api_key_variable() -> None:
    result = classify(status_error(401, error_body("authentication_error", "invalid x-api-key")))
    assert result is not None
    assert (result.kind, result.retryable, result.fatal_for_run) == ("authentication", False, True)
    assert result.message == AUTH_MESSAGE
    assert "ANTHROPIC_API_KEY" in result.message


def test_an_unknown_model_stops_the_run_naming_the_model() -> None:
    result = classify(status_error(404, error_body("not_found_error", "model: claude-imaginary-9")))
    assert result is not None
    assert (result.kind, result.retryable, result.fatal_for_run) == ("not_found", False, True)
    assert "'claude-imaginary-9'" in result.message and "validate" in result.message


@pytest.mark.parametrize(
    ("status", "error_type", "message", "fatal"),
    [
        (400, "invalid_request_error", "max_tokens: 100000 > 64000, which is the maximum", True),
        (403, "permission_error", "this key cannot use web search", True),
        (404, "not_found_error", "The requested resource could not be found.", True),
        (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", False),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", False),
        (429, "rate_limit_error", "slow down", False),
        (529, "overloaded_error", "Overloaded", False),
    ],
)
def test_a_4xx_on_an_agents_first_call_ends_the_run_naming_the_field(
    status: int, error_type: str, message: str, fatal: bool
) -> None:
    result = classify(status_error(status, error_body(error_type, message)))
    assert result is not None
    first = first_call_refusal(result)

    assert first.fatal_for_run is fatal and first.retryable is result.retryable
    if fatal:
        assert message in first.message and str(status) in first.message
    else:
        assert first == result


@pytest.mark.parametrize("code", ["enforced_spend_limit_reached", "contract_spend_limit_reached"])
def test_a_spend_limit_429_is_not_retried(code: str) -> None:
    exc = status_error(429, error_body("rate_limit_error", "monthly spend limit reached", code))
    assert isinstance(exc, anthropic.RateLimitError)  # the SDK alone would retry it, pointlessly
    result = classify(exc)
    assert result is not None
    assert (result.kind, result.retryable, result.status_code) == ("spend_limit", False, 429)
    assert result.message == "monthly spend limit reached"


def test_request_id_falls_back_to_the_body() -> None:
    result = classify(status_error(400, error_body("invalid_request_error", "bad")))
    assert result is not None and result.request_id == "req_body"


def test_an_error_event_mid_stream_is_a_retryable_stream_error() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    exc = status_error(200, body, {"request-id": "req_stream"})
    assert type(exc) is anthropic.APIStatusError and exc.status_code == 200
    result = classify(exc)
    assert result is not None
    assert (result.kind, result.retryable, result.error_type) == ("stream_error", True, "overloaded_error")
    assert (result.message, result.request_id, result.retry_after_s) == ("Overloaded", "req_stream", None)


def test_a_permanent_error_event_mid_stream_is_not_retried() -> None:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "nope"}}
    result = classify(status_error(200, body))
    assert result is not None and result.kind == "stream_error" and not result.retryable


BEGUN = AttemptProgress(sent=True, responded=True)  # a 200 came and its stream had begun
SENT = AttemptProgress(sent=True)  # no response yet


@pytest.mark.parametrize(
    ("exc", "progress", "kind"),
    [
        (anthropic.APIConnectionError(request=request()), SENT, "connection"),
        (anthropic.APIConnectionError(request=request()), BEGUN, "stream_broken"),
        (anthropic.APITimeoutError(request=request()), BEGUN, "timeout"),
        (httpx2.RemoteProtocolError("peer closed connection", request=request()), BEGUN, "stream_broken"),
        (httpx2.RemoteProtocolError("server disconnected", request=request()), SENT, "connection"),
        (httpx2.ReadError("connection reset", request=request()), BEGUN, "stream_broken"),
        (httpx2.ReadTimeout("read timed out", request=request()), BEGUN, "timeout"),
        (httpx2.ConnectError("refused", request=request()), SENT, "connection"),
        (StreamIncomplete("stream ended without message_stop"), BEGUN, "stream_broken"),
    ],
)
def test_transport_failures_are_retryable(exc: BaseException, progress: AttemptProgress, kind: str) -> None:
    result = classify(exc, progress)
    assert result is not None
    assert (result.kind, result.retryable, result.fatal_for_run, result.status_code) == (
        kind,
        True,
        False,
        None,
    )
    assert result.message


def test_connection_error_message_includes_its_cause() -> None:
    try:
        try:
            raise httpx2.ConnectError("Connection refused", request=request())
        except httpx2.ConnectError as cause:
            raise anthropic.APIConnectionError(request=request()) from cause
    except anthropic.APIConnectionError as exc:
        result = classify(exc)
    assert result is not None and "Connection refused" in result.message


@pytest.mark.parametrize("exc", [ValueError("bug"), KeyError("x"), RuntimeError("Unexpected event order")])
def test_non_api_errors_are_not_classified(exc: BaseException) -> None:
    assert classify(exc) is None


# --- retry-after --------------------------------------------------------------------------------


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_seconds_may_be_a_float() -> None:
    assert parse_retry_after({"Retry-After": "2.5"}) == 2.5


def test_retry_after_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    seconds = parse_retry_after({"retry-after": header}, now=now)
    assert seconds is not None and 29.0 <= seconds <= 30.0
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0


@pytest.mark.parametrize("headers", [{}, {"retry-after": "soon"}, {"retry-after-ms": "nan"}])
def test_unreadable_retry_after_is_none(headers: dict[str, str]) -> None:
    assert parse_retry_after(headers) is None


def test_classify_reads_retry_after_from_the_response() -> None:
    ms = classify(status_error(429, error_body("rate_limit_error", "slow"), {"retry-after-ms": "250"}))
    secs = classify(status_error(529, error_body("overloaded_error", "busy"), {"retry-after": "3"}))
    assert ms is not None and ms.retry_after_s == 0.25
    assert secs is not None and secs.retry_after_s == 3.0


# --- the policy ---------------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(settings(base_delay_s=1.0, max_delay_s=10.0), rng=random.Random(7))
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (40, 10.0), (10_000, 10.0)]:
        samples = [policy.backoff(attempt) for _ in range(2000)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # full jitter spreads over the whole range, down to ~0 (not "half fixed + half random")
        assert min(samples) < 0.05 * ceiling and max(samples) > 0.95 * ceiling


def test_server_retry_after_wins_and_is_never_shortened() -> None:
    policy = RetryPolicy(settings(max_delay_s=1.0), rng=random.Random(1))
    waits = [policy.delay_for(info("rate_limit", retry_after=7.0), attempt=1) for _ in range(500)]
    assert all(7.0 <= w <= 7.25 for w in waits)
    small = [policy.delay_for(info("rate_limit", retry_after=0.3), attempt=1) for _ in range(500)]
    assert all(0.3 <= w <= 0.33 for w in small)


def test_without_retry_after_the_delay_is_backoff() -> None:
    policy = RetryPolicy(settings(base_delay_s=2.0, max_delay_s=60.0), rng=random.Random(3))
    waits = [policy.delay_for(info(), attempt=3) for _ in range(500)]
    assert all(0.0 <= w <= 8.0 for w in waits) and max(waits) > 7.0


def test_should_retry_honours_attempts_time_and_permanence() -> None:
    policy = RetryPolicy(settings(max_attempts=3, max_total_seconds=60.0))
    assert policy.should_retry(info(), attempt=1, elapsed_s=0.0)
    assert policy.should_retry(info(), attempt=2, elapsed_s=10.0)
    assert not policy.should_retry(info(), attempt=3, elapsed_s=10.0)
    assert not policy.should_retry(info(), attempt=1, elapsed_s=60.0)
    assert not policy.should_retry(info(), attempt=1, elapsed_s=50.0, wait_s=15.0)
    assert not policy.should_retry(info("bad_request", retryable=False), attempt=1, elapsed_s=0.0)


# --- call_with_retries --------------------------------------------------------------------------


class MidStream(Exception):
    """A scripted failure that happens after the response began (the attempt records that first)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Script:
    """An attempt function that raises the scripted exceptions, then returns ``"ok"``."""

    def __init__(self, clock: FakeClock, *failures: BaseException) -> None:
        self.clock = clock
        self.failures = list(failures)
        self.started: list[tuple[int, float]] = []

    async def __call__(self, progress: AttemptProgress) -> str:
        self.started.append((progress.number, self.clock.now))
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, MidStream):
                progress.responded = True
                raise failure.error
            raise failure
        return "ok"


class Recorder:
    def __init__(self) -> None:
        self.retries: list[tuple[ErrorInfo, int, float]] = []

    def on_retry(self, error: ErrorInfo, attempt: int, wait: float) -> None:
        self.retries.append((error, attempt, wait))


async def run(
    script: Callable[[AttemptProgress], Awaitable[str]],
    clock: FakeClock,
    retry: RetrySettings,
    gate: RequestGate | None = None,
) -> tuple[str, Recorder]:
    recorder = Recorder()
    result = await call_with_retries(
        script,
        policy=RetryPolicy(retry, rng=random.Random(0)),
        gate=gate or RequestGate(4, clock=clock, sleep=clock.sleep),
        on_retry=recorder.on_retry,
    )
    return result, recorder


async def test_retryable_errors_are_retried_until_success() -> None:
    clock = AutoClock()
    failures = [
        status_error(529, error_body("overloaded_error", "Overloaded")),
        anthropic.APIConnectionError(request=request()),
        MidStream(httpx2.RemoteProtocolError("peer closed connection", request=request())),
    ]
    script = Script(clock, *failures)
    result, recorder = await run(script, clock, settings(max_attempts=4))
    assert result == "ok"
    assert [a for a, _ in script.started] == [1, 2, 3, 4]
    assert [(i.kind, attempt) for i, attempt, _ in recorder.retries] == [
        ("overloaded", 1),
        ("connection", 2),
        ("stream_broken", 3),
    ]
    assert clock.sleeps == [wait for _, _, wait in recorder.retries]


async def test_retry_after_is_honoured_before_the_next_attempt() -> None:
    clock = AutoClock()
    limited = status_error(429, error_body("rate_limit_error", "slow down"), {"retry-after": "7"})
    script = Script(clock, limited)
    result, recorder = await run(script, clock, settings(max_delay_s=1.0))
    assert result == "ok"
    ((error, attempt, wait),) = recorder.retries
    assert (error.kind, error.retry_after_s, attempt) == ("rate_limit", 7.0, 1)
    assert 7.0 <= wait <= 7.25
    assert script.started[1][1] - script.started[0][1] >= 7.0


async def test_max_attempts_bounds_the_retries() -> None:
    clock = AutoClock()
    script = Script(clock, *[status_error(500, error_body("api_error", "oops")) for _ in range(10)])
    with pytest.raises(RetriesExhausted) as raised:
        await run(script, clock, settings(max_attempts=3))
    assert raised.value.attempts == 3 and raised.value.info.kind == "server_error"
    assert len(script.started) == 3
    assert isinstance(raised.value.__cause__, anthropic.InternalServerError)


async def test_max_total_seconds_bounds_the_retries() -> None:
    clock = AutoClock()
    failures = [
        status_error(429, error_body("rate_limit_error", "slow"), {"retry-after": "6"}) for _ in range(5)
    ]
    script = Script(clock, *failures)
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    with pytest.raises(RetriesExhausted) as raised:
        await run(script, clock, settings(max_attempts=10, max_total_seconds=10.0), gate)
    # attempt 1 at t=0, waits ~6 s; attempt 2 at t~6 would need to wait until ~12 > 10: give up now
    assert raised.value.attempts == 2
    assert len(script.started) == 2
    assert clock.now - script.started[0][1] < 10.0
    held = gate.held_until  # giving up does not free the other agents from the server's wait
    assert held is not None and held >= clock.now + 6.0


async def test_a_non_retryable_error_is_raised_at_once_without_sleeping() -> None:
    clock = AutoClock()
    bad = status_error(
        400, error_body("invalid_request_error", "messages: bad shape"), {"request-id": "req_1"}
    )
    script = Script(clock, bad)
    recorder = Recorder()
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    with pytest.raises(NonRetryableError) as raised:
        await call_with_retries(
            script,
            policy=RetryPolicy(settings()),
            gate=gate,
            on_retry=recorder.on_retry,
        )
    assert raised.value.info.kind == "bad_request"
    assert raised.value.info.message == "messages: bad shape"
    assert "req_1" in str(raised.value)
    assert len(script.started) == 1 and clock.sleeps == [] and recorder.retries == []
    assert gate.in_flight == 0


async def test_a_401_fails_fast_and_is_fatal_for_the_run() -> None:
    clock = AutoClock()
    script = Script(clock, status_error(401, error_body("authentication_error", "invalid x-api-key")))
    with pytest.raises(NonRetryableError) as raised:
        await run(script, clock, settings())
    assert raised.value.info.fatal_for_run and "ANTHROPIC_API_KEY" in str(raised.value)
    assert len(script.started) == 1 and clock.sleeps == []


async def test_programming_errors_propagate_untouched() -> None:
    clock = AutoClock()
    script = Script(clock, KeyError("content"))
    with pytest.raises(KeyError):
        await run(script, clock, settings())
    assert len(script.started) == 1 and clock.sleeps == []


async def test_cancellation_inside_an_attempt_is_never_retried() -> None:
    clock = AutoClock()
    script = Script(clock, asyncio.CancelledError())
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    with pytest.raises(asyncio.CancelledError):
        await run(script, clock, settings(), gate)
    assert len(script.started) == 1 and clock.sleeps == [] and gate.in_flight == 0


async def test_cancellation_during_the_wait_stops_at_once() -> None:
    clock = FakeClock()
    script = Script(clock, status_error(529, error_body("overloaded_error", "busy"), {"retry-after": "30"}))
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    task = asyncio.create_task(run(script, clock, settings(), gate))
    await settle()
    assert len(clock.sleeps) == 1 and gate.in_flight == 0  # waiting, holding no slot
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(script.started) == 1


# --- the gate -----------------------------------------------------------------------------------


async def test_no_slot_is_granted_before_a_hold_ends_and_waiters_are_released_one_by_one() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep, release_spacing_s=0.05)
    granted: list[float] = []

    async def agent() -> None:
        async with gate.slot():
            granted.append(clock.now)

    gate.hold_until(10.0)
    assert gate.held_until == 10.0
    tasks = [asyncio.create_task(agent()) for _ in range(4)]
    await settle()
    await clock.advance(9.99)
    assert granted == []
    await clock.advance(0.01)
    assert granted == [pytest.approx(10.0)]
    for _ in range(3):
        await clock.advance(0.051)
    await asyncio.gather(*tasks)
    assert len(granted) == 4 and all(t >= 10.0 for t in granted)
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(granted))
    assert gate.held_until is None


async def test_holds_only_extend() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(2, clock=clock, sleep=clock.sleep)
    gate.hold_until(5.0)
    gate.hold_until(3.0)
    assert gate.held_until == 5.0


async def test_the_concurrency_limit_caps_slots_in_flight() -> None:
    clock = FakeClock()
    gate = RequestGate(2, clock=clock, sleep=clock.sleep)
    release = asyncio.Event()
    peak = 0

    async def agent() -> None:
        nonlocal peak
        async with gate.slot():
            peak = max(peak, gate.in_flight)
            await release.wait()

    tasks = [asyncio.create_task(agent()) for _ in range(5)]
    await settle()
    assert gate.in_flight == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2 and gate.in_flight == 0


async def test_concurrency_halves_on_429_once_per_burst_and_grows_back_on_success() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep, decrease_cooldown_s=2.0)
    rate_limited = ErrorInfo("rate_limit", 429, True, False, None, None, "slow", None)
    gate.record_failure(rate_limited, 0.0)
    gate.record_failure(rate_limited, 0.0)  # the same burst: no second cut
    assert gate.limit == 4
    await clock.advance(2.5)
    gate.record_failure(ErrorInfo("overloaded", 529, True, False, None, None, "busy", None), 0.0)
    assert gate.limit == 2
    history = []
    for _ in range(60):
        gate.record_success()
        history.append(gate.limit)
    assert history == sorted(history)  # additive: never a jump down
    assert history[0] == 2 and history[-1] == 8 and max(history) == 8
    assert all(b - a <= 1 for a, b in itertools.pairwise(history))


async def test_a_shrunk_limit_queues_attempts_and_growth_lets_them_in() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    gate.record_failure(ErrorInfo("overloaded", 529, True, False, None, None, "busy", None), 0.0)
    assert gate.limit == 2
    release = asyncio.Event()

    async def agent() -> None:
        async with gate.slot():
            await release.wait()

    tasks = [asyncio.create_task(agent()) for _ in range(4)]
    await settle()
    assert (gate.in_flight, gate.waiting) == (2, 2)
    while gate.limit < 3:
        gate.record_success()
    await settle()
    assert (gate.in_flight, gate.waiting) == (3, 1)
    release.set()
    await asyncio.gather(*tasks)
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_an_overloaded_error_event_mid_stream_also_shrinks_concurrency() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep)
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    mid_stream = classify(status_error(200, body))
    assert mid_stream is not None
    gate.record_failure(mid_stream, 0.5)
    assert gate.limit == 4 and gate.held_until is None


async def test_a_429_without_retry_after_also_holds_everyone_for_the_wait() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    gate.record_failure(ErrorInfo("rate_limit", 429, True, False, None, None, "slow", None), 1.5)
    assert gate.held_until == 1.5
    gate.record_failure(info("server_error"), 9.0)  # a 500's own backoff is not everyone's business
    assert gate.held_until == 1.5


def reset_header(wall: float, seconds: float, *, zulu: bool = False) -> str:
    text = datetime.fromtimestamp(wall + seconds, tz=UTC).isoformat()
    return text.replace("+00:00", "Z") if zulu else text


@pytest.mark.parametrize("zulu", [False, True])
async def test_a_spent_limit_of_unknown_size_holds_until_reset(zulu: bool) -> None:
    clock = FakeClock(start=50.0)
    wall = 1_800_000_000.0
    gate = RequestGate(4, clock=clock, sleep=clock.sleep, wall_clock=lambda: wall)
    gate.observe_headers(
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset_header(wall, 5.0, zulu=zulu),
        }
    )
    assert gate.held_until == pytest.approx(55.0)
    granted: list[float] = []

    async def agent() -> None:
        async with gate.slot():
            granted.append(clock.now)

    task = asyncio.create_task(agent())
    await settle()
    await clock.advance(4.9)
    assert granted == []
    await clock.advance(0.2)
    await task
    assert granted and granted[0] >= 55.0


async def test_a_spent_limit_of_known_size_is_paced_back_in_not_held_until_its_reset() -> None:
    clock = FakeClock(start=50.0)
    wall = 1_800_000_000.0
    gate = RequestGate(4, clock=clock, sleep=clock.sleep, wall_clock=lambda: wall)
    gate.observe_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset_header(wall, 59.0),  # when it is *full* again
        }
    )
    assert gate.held_until is None
    assert gate.paced_until() == pytest.approx(51.2)  # one request refills in 60 / 50 s
    granted = await grant_times(gate, clock, 3, hold_s=0.0)
    assert granted == pytest.approx([51.2, 52.4, 53.6])


async def test_a_bucket_in_debt_is_paced_by_its_reset_time_which_a_remaining_of_zero_hides() -> None:
    clock = FakeClock(start=0.0)
    wall = 1_800_000_000.0
    gate = RequestGate(4, clock=clock, sleep=clock.sleep, wall_clock=lambda: wall)
    gate.observe_headers(  # output tokens are charged after admission: the bucket can go below 0
        {
            "anthropic-ratelimit-output-tokens-limit": "15000",  # 250 a second
            "anthropic-ratelimit-output-tokens-remaining": "0",
            "anthropic-ratelimit-output-tokens-reset": reset_header(wall, 72.0),  # 3,000 in debt
        }
    )
    # 3,000 + 250 to pay back (the reset is cut to whole seconds: one more second, to be safe),
    # then the 100 this attempt draws
    assert gate.paced_until(RequestCost(output_tokens=100)) == pytest.approx((3250 + 100) / 250)


async def test_low_remaining_paces_without_shrinking_concurrency_healthy_adds_nothing() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep)
    gate.observe_headers(
        {"anthropic-ratelimit-tokens-limit": "80000", "anthropic-ratelimit-tokens-remaining": "60000"}
    )
    assert gate.limit == 8 and gate.held_until is None and gate.paced_until() is None
    gate.observe_headers(
        {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0"}
    )
    assert gate.limit == 8 and gate.held_until is None and gate.paced_until() is not None


async def test_a_bogus_far_reset_is_not_obeyed() -> None:
    clock = FakeClock(start=0.0)
    wall = 1_800_000_000.0
    gate = RequestGate(4, clock=clock, sleep=clock.sleep, wall_clock=lambda: wall)
    gate.observe_headers(
        {
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset_header(wall, 86_400.0),
        }
    )
    assert gate.held_until is None


async def test_one_agents_429_makes_every_agent_wait() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    limited = status_error(429, error_body("rate_limit_error", "slow"), {"retry-after": "2"})
    first = Script(clock, limited)
    second = Script(clock)
    a = asyncio.create_task(run(first, clock, settings(), gate))
    await settle()
    hold = gate.held_until
    assert hold is not None and 2.0 <= hold <= 2.25
    b = asyncio.create_task(run(second, clock, settings(), gate))
    await clock.advance(1.9)
    assert second.started == [] and len(first.started) == 1
    for _ in range(10):
        await clock.advance(0.1)
    assert (await a)[0] == "ok" and (await b)[0] == "ok"
    assert second.started[0][1] >= hold and first.started[1][1] >= hold


# --- pacing by the rate-limit headers -----------------------------------------------------------


def limits(requests: tuple[int, int] | None = None, **families: tuple[int, int]) -> dict[str, str]:
    """``anthropic-ratelimit-*`` headers: (limit, remaining) per family (``input_tokens=...``)."""
    pairs = dict(families, requests=requests) if requests else families
    headers: dict[str, str] = {}
    for name, (limit, remaining) in pairs.items():
        prefix = f"anthropic-ratelimit-{name.replace('_', '-')}-"
        headers[prefix + "limit"], headers[prefix + "remaining"] = str(limit), str(remaining)
    return headers


async def grant_times(
    gate: RequestGate, clock: FakeClock, agents: int, *, hold_s: float, cost: RequestCost = ONE_REQUEST
) -> list[float]:
    """Start ``agents`` attempts at once; each holds its slot ``hold_s``. When was each let in?"""
    granted: list[float] = []

    async def agent() -> None:
        async with gate.slot(cost):
            granted.append(clock.now)
            await clock.sleep(hold_s)

    await drive(clock, [asyncio.create_task(agent()) for _ in range(agents)])
    return sorted(granted)


@pytest.mark.parametrize("remaining", [0, 1, 2, 3, 4, 5])
async def test_a_binding_request_limit_spaces_slots_sixty_over_limit_seconds_apart(remaining: int) -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(20, clock=clock, sleep=clock.sleep)
    gate.observe_headers(limits(requests=(50, remaining)))
    granted = await grant_times(gate, clock, 12, hold_s=0.1)
    # what -remaining allows goes at once; every later slot waits for one request to refill
    assert granted[:remaining] == [0.0] * remaining
    paced = granted[remaining:] if remaining else [0.0, *granted]
    assert all(b - a >= 1.2 - 1e-6 for a, b in itertools.pairwise(paced))
    assert granted[-1] == pytest.approx((12 - remaining) * 1.2, abs=0.01)  # and not slower than that


async def test_a_limit_far_from_binding_adds_no_delay_at_all() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(100, clock=clock, sleep=clock.sleep)
    gate.observe_headers(limits(requests=(4000, 3990), input_tokens=(2_000_000, 1_990_000)))
    granted = await grant_times(gate, clock, 100, hold_s=1.0, cost=RequestCost(input_tokens=5000))
    assert granted == [0.0] * 100
    assert clock.sleeps == [1.0] * 100  # the attempts' own; the gate never slept


async def test_never_more_in_flight_than_remaining_allows_counting_attempts_not_yet_answered() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(20, clock=clock, sleep=clock.sleep)
    gate.observe_headers(limits(requests=(50, 10)))
    granted: list[float] = []
    first_answered = asyncio.Event()

    async def agent(index: int) -> None:
        async with gate.slot():
            granted.append(clock.now)
            if index == 0:  # answered while three others, granted after it, are still on the way
                gate.observe_headers(limits(requests=(50, 4)))
                first_answered.set()
            await clock.sleep(30.0)

    tasks = [asyncio.create_task(agent(i)) for i in range(4)]
    await settle()
    assert first_answered.is_set() and granted == [0.0] * 4
    late = [asyncio.create_task(agent(i)) for i in range(4, 8)]
    await settle()
    # the server saw 4 left after the first attempt; the 3 sent since use 3 of them: one more now
    assert granted == [0.0] * 5
    await clock.advance(1.19)
    assert len(granted) == 5
    await clock.advance(0.02)
    assert len(granted) == 6
    await drive(clock, tasks + late)


async def test_headers_of_an_older_attempt_do_not_undo_newer_news() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    gate.observe_headers(limits(requests=(50, 30)))
    older_done, newer_done = asyncio.Event(), asyncio.Event()

    async def older() -> None:
        async with gate.slot():
            await newer_done.wait()
            gate.observe_headers(limits(requests=(50, 29)))  # stale: before the newer one's 0
            older_done.set()

    async def newer() -> None:
        async with gate.slot():
            gate.observe_headers(limits(requests=(50, 0)))
            newer_done.set()
            await older_done.wait()

    await asyncio.gather(older(), newer())
    assert gate.paced_until() == pytest.approx(1.2)


async def test_a_token_limit_is_paced_by_the_cost_hint() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep)
    gate.observe_headers(limits(requests=(4000, 3999), input_tokens=(60_000, 9_300)))  # 1,000 a second
    hint = RequestCost(input_tokens=3000)
    granted = await grant_times(gate, clock, 5, hold_s=0.5, cost=hint)
    assert granted == pytest.approx([0.0, 0.0, 0.0, 2.7, 5.7])  # 9,300 pays three; then 3 s each
    huge = RequestCost(input_tokens=10**9)  # the server never asks more than a full bucket
    assert gate.paced_until(huge) == pytest.approx(5.7 + 60.0)


async def test_the_combined_tokens_family_is_ignored_when_input_and_output_are_given() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep)
    headers = limits(input_tokens=(1_000_000, 990_000), output_tokens=(80_000, 50_000), tokens=(80_000, 0))
    gate.observe_headers(headers)
    assert gate.paced_until(RequestCost(input_tokens=1000, output_tokens=1000)) is None


async def test_after_a_429_waiters_come_back_at_the_pace_not_as_a_herd() -> None:
    clock = FakeClock(start=0.0)
    gate = RequestGate(8, clock=clock, sleep=clock.sleep, release_spacing_s=0.05)
    limited = status_error(
        429, error_body("rate_limit_error", "slow"), {**limits(requests=(50, 0)), "retry-after": "1"}
    )
    script = Script(clock, limited)
    first = asyncio.create_task(run(script, clock, settings(), gate))
    await settle()
    hold = gate.held_until
    assert hold is not None and 1.0 <= hold <= 1.25
    granted: list[float] = []

    async def agent() -> None:
        async with gate.slot():
            granted.append(clock.now)

    await drive(clock, [first, *(asyncio.create_task(agent()) for _ in range(5))])
    times = sorted([*granted, script.started[1][1]])
    assert times[0] >= hold  # nobody before the server's retry-after is over
    assert all(b - a >= 1.2 - 1e-6 for a, b in itertools.pairwise(times))  # then one per 60/50 s
    assert times[-1] <= hold + 6 * 1.2


WALL_AT_ZERO = 1_800_000_000.0  # the fake wall clock: this plus the fake monotonic clock


class BucketServer:
    """The API's limiter in miniature, on the fake clock: token buckets refilled at ``limit / 60``
    a second, 429 with ``retry-after`` when one is short, headers read when the answer ends.

    As in the simulator, output tokens are charged on admission, which only needs 1 left, so that
    bucket can go into debt: its ``-remaining`` then says 0 and only ``-reset`` tells how deep.
    """

    def __init__(
        self, clock: FakeClock, requests: int, input_tokens: int = 10**12, output_tokens: int = 10**12
    ):
        self.clock = clock
        self.limits = {"requests": requests, "input-tokens": input_tokens, "output-tokens": output_tokens}
        self.levels = {name: float(limit) for name, limit in self.limits.items()}
        self.updated = clock.now
        self.answers: list[tuple[float, int]] = []  # (when, status)

    def _refill(self) -> None:
        elapsed, self.updated = self.clock.now - self.updated, self.clock.now
        for name, limit in self.limits.items():
            self.levels[name] = min(limit, self.levels[name] + elapsed * limit / 60.0)

    def headers(self) -> dict[str, str]:
        self._refill()
        headers: dict[str, str] = {}
        for name, level in self.levels.items():
            limit, remaining = self.limits[name], int(max(0.0, level))
            if name != "requests" and remaining >= 1000:
                remaining = round(remaining, -3)
            full_at = WALL_AT_ZERO + self.clock.now + (limit - level) * 60.0 / limit
            headers |= limits(**{name.replace("-", "_"): (limit, remaining)})
            headers[f"anthropic-ratelimit-{name}-reset"] = reset_header(math.floor(full_at), 0.0)
        return headers

    async def call(self, gate: RequestGate, input_tokens: int, output_tokens: int, duration_s: float) -> str:
        self._refill()
        needs = {"requests": 1.0, "input-tokens": float(input_tokens), "output-tokens": 1.0}
        wait = max((need - self.levels[n]) * 60.0 / self.limits[n] for n, need in needs.items())
        if wait > 0:
            self.answers.append((self.clock.now, 429))
            headers = {**self.headers(), "retry-after": str(max(1, math.ceil(wait)))}
            raise status_error(429, error_body("rate_limit_error", "rate limited"), headers)
        self.levels["requests"] -= 1
        self.levels["input-tokens"] -= input_tokens
        self.levels["output-tokens"] -= output_tokens
        headers = self.headers()
        self.answers.append((self.clock.now, 200))
        await self.clock.sleep(duration_s)  # the stream; the session reads the headers at its end
        gate.observe_headers(headers)
        return "ok"

    def figures(self, allowance: int, per_minute: float) -> tuple[float, float]:
        """(429 share, throughput beyond the starting allowance as a share of the limit)."""
        limited = sum(1 for _, status in self.answers if status == 429)
        ok = [when for when, status in self.answers if status == 200]
        ideal = (len(ok) - allowance) / per_minute * 60.0
        return limited / len(self.answers), ideal / (max(ok) - self.answers[0][0])


async def run_agents(
    server: BucketServer,
    clock: FakeClock,
    *,
    agents: int,
    calls: int,
    input_tokens: int = 100,
    output_tokens: int = 100,
    cost: RequestCost = ONE_REQUEST,
) -> None:
    gate = RequestGate(agents, clock=clock, sleep=clock.sleep, wall_clock=lambda: WALL_AT_ZERO + clock.now)
    rng = random.Random(3)
    policy = RetryPolicy(settings(max_attempts=50), rng=random.Random(4))

    async def agent() -> None:
        for _ in range(calls):
            duration = rng.uniform(0.2, 2.0)
            await call_with_retries(
                lambda _, duration=duration: server.call(gate, input_tokens, output_tokens, duration),
                policy=policy,
                gate=gate,
                on_retry=lambda *_: None,
                cost=cost,
            )

    await drive(clock, [asyncio.create_task(agent()) for _ in range(agents)])


async def test_twenty_agents_under_fifty_requests_a_minute_rarely_see_a_429_and_use_the_limit() -> None:
    clock = FakeClock(start=0.0)
    server = BucketServer(clock, requests=50)
    await run_agents(server, clock, agents=20, calls=10)
    share_429, throughput = server.figures(allowance=50, per_minute=50)
    assert share_429 <= 0.02
    assert throughput >= 0.95


@pytest.mark.parametrize("hinted", [True, False])
async def test_a_binding_input_token_limit_is_paced_with_or_without_a_cost_hint(hinted: bool) -> None:
    clock = FakeClock(start=0.0)
    server = BucketServer(clock, requests=4000, input_tokens=100_000)  # 25 calls of 4,000 a minute
    cost = RequestCost(input_tokens=4000) if hinted else ONE_REQUEST
    await run_agents(server, clock, agents=10, calls=10, input_tokens=4000, cost=cost)
    share_429, throughput = server.figures(allowance=25, per_minute=25)
    assert share_429 <= 0.05
    assert throughput >= 0.9


@pytest.mark.parametrize("hinted", [True, False])
async def test_a_binding_output_token_limit_is_paced_even_when_its_bucket_goes_into_debt(
    hinted: bool,
) -> None:
    clock = FakeClock(start=0.0)
    server = BucketServer(clock, requests=4000, output_tokens=6000)  # 20 answers of 300 a minute
    cost = RequestCost(output_tokens=300) if hinted else ONE_REQUEST
    await run_agents(server, clock, agents=10, calls=10, output_tokens=300, cost=cost)
    share_429, throughput = server.figures(allowance=20, per_minute=20)
    assert share_429 <= 0.05
    assert throughput >= 0.9


# --- against the real SDK over real HTTP --------------------------------------------------------


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


MESSAGE_START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1},
    },
}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}
MESSAGE_END: list[tuple[str, dict[str, Any]]] = [
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


class ScriptedServer:
    """A tiny Messages endpoint answering each request with the next scripted behaviour."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.arrivals: list[float] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        mode = self.script.pop(0) if self.script else "ok"
        if mode == "429":
            body = error_body("rate_limit_error", "rate limited")
            return web.json_response(
                body, status=429, headers={"retry-after": "0.3", "request-id": "req_429"}
            )
        if mode == "401":
            return web.json_response(error_body("authentication_error", "invalid x-api-key"), status=401)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": "req_ok"})
        await response.prepare(request)
        if mode == "slow":
            await asyncio.sleep(0.05)  # a slow server: the duration is the behaviour
        await response.write(sse("message_start", MESSAGE_START) + sse("content_block_start", TEXT_START))
        await response.write(sse("content_block_delta", TEXT_DELTA))
        if mode == "stream_error":
            await response.write(
                sse(
                    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
                )
            )
            return response
        if mode == "drop":
            assert request.transport is not None
            request.transport.close()
            return response
        for event, data in MESSAGE_END:
            await response.write(sse(event, data))
        return response


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[tuple[ScriptedServer, anthropic.AsyncAnthropic]]]]:
    runners: list[web.AppRunner] = []
    clients: list[anthropic.AsyncAnthropic] = []

    async def start(*script: str) -> tuple[ScriptedServer, anthropic.AsyncAnthropic]:
        server = ScriptedServer(*script)
        app = web.Application()
        app.router.add_post("/v1/messages", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        client = anthropic.AsyncAnthropic(
            api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0, timeout=5.0
        )
        clients.append(client)
        return server, client

    yield start
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


async def stream_text(
    client: anthropic.AsyncAnthropic, gate: RequestGate, progress: AttemptProgress | None = None
) -> str:
    """One streamed call that records what the product's streaming call records of an attempt."""
    progress = progress or AttemptProgress()
    progress.sent = True
    async with client.messages.stream(
        model="claude-sonnet-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        progress.responded = True
        gate.observe_headers(stream.response.headers)
        message = await stream.get_final_message()
    if message.stop_reason is None:
        raise StreamIncomplete("no message_stop")
    return "".join(block.text for block in message.content if block.type == "text")


async def sdk_call(client: anthropic.AsyncAnthropic) -> tuple[str, Recorder]:
    gate = RequestGate(4)
    recorder = Recorder()
    text = await call_with_retries(
        lambda progress: stream_text(client, gate, progress),
        policy=RetryPolicy(settings(base_delay_s=0.01, max_delay_s=0.05)),
        gate=gate,
        on_retry=recorder.on_retry,
    )
    return text, recorder


async def test_real_sdk_429_retry_after_is_waited_out_before_the_next_request(serve: Any) -> None:
    server, client = await serve("429", "ok")
    text, recorder = await sdk_call(client)
    assert text == "Hello"
    assert len(server.arrivals) == 2  # the SDK did not retry on its own
    assert 0.3 <= server.arrivals[1] - server.arrivals[0] < 1.0  # waited, but not twice over
    ((error, attempt, wait),) = recorder.retries
    assert (error.kind, error.status_code, error.retry_after_s, error.request_id) == (
        "rate_limit",
        429,
        0.3,
        "req_429",
    )
    assert attempt == 1 and wait >= 0.3


@pytest.mark.parametrize(("mode", "kind"), [("stream_error", "stream_error"), ("drop", "stream_broken")])
async def test_real_sdk_mid_stream_failures_are_retried(serve: Any, mode: str, kind: str) -> None:
    server, client = await serve(mode, "ok")
    text, recorder = await sdk_call(client)
    assert text == "Hello"
    assert len(server.arrivals) == 2
    assert [(e.kind, e.retryable) for e, _, _ in recorder.retries] == [(kind, True)]


async def test_real_sdk_401_fails_fast(serve: Any) -> None:
    server, client = await serve("401")
    with pytest.raises(NonRetryableError) as raised:
        await sdk_call(client)
    assert raised.value.info.fatal_for_run and raised.value.info.message == AUTH_MESSAGE
    assert len(server.arrivals) == 1


async def test_real_sdk_one_agents_429_stops_every_agent_from_sending_until_the_wait_is_over(
    serve: Any,
) -> None:
    server, client = await serve(*(["slow"] * 5 + ["429"] + ["slow"] * 30))
    gate = RequestGate(6)
    policy = RetryPolicy(settings(base_delay_s=0.01, max_delay_s=0.05))
    sends: list[float] = []
    seen: list[float] = []

    async def attempt(_: AttemptProgress) -> str:
        sends.append(time.monotonic())
        return await stream_text(client, gate)

    def on_retry(error: ErrorInfo, attempt_no: int, wait: float) -> None:
        seen.append(time.monotonic())

    async def agent() -> None:
        for _ in range(3):
            await call_with_retries(attempt, policy=policy, gate=gate, on_retry=on_retry)

    await asyncio.gather(*(agent() for _ in range(6)))
    assert len(seen) == 1 and len(sends) == len(server.arrivals) == 19
    quiet = [t for t in sends if seen[0] < t < seen[0] + 0.3]
    assert quiet == [], "an agent sent during the server's retry-after"
    later = sorted(t for t in sends if t > seen[0])
    assert len(later) >= 6
    # released one by one after the hold, not as a herd
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(later[:6]))
