"""Wait by time, count by kind (issue 24): 429, 529 and ``overloaded_error`` spend no attempts;
connection errors, timeouts and 5xx count per streak; what no retry can fix ends the run at once.

Before, 70 s of 429s (32 attempts) used up the attempt budget, so the first connection error of a
one-second restart failed every agent; a certificate the machine does not trust and a host that
does not resolve were retried as blips, agent after agent, layer after layer.
"""

from __future__ import annotations

import socket
import ssl

import anthropic
import httpx2
import pytest

from core.api.reachability import DNS_CONFIRMATIONS
from core.api.retry import NonRetryableError, RequestGate, RetriesExhausted, classify
from tests.core.api.test_retry import AutoClock, Script, error_body, request, run, status_error
from tests.core.api.test_retry import settings as retry_settings

API = "https://api.example.test:8443/v1/messages"


def rate_limited(seconds: float = 2.0) -> BaseException:
    return status_error(429, error_body("rate_limit_error", "slow down"), {"retry-after": str(seconds)})


def overloaded() -> BaseException:
    return status_error(529, error_body("overloaded_error", "Overloaded"))


def refused() -> BaseException:
    return anthropic.APIConnectionError(request=request())


def wrapped(inner: BaseException) -> BaseException:
    """As the SDK raises it: APIConnectionError from httpx's ConnectError from httpcore's, whose
    argument (and implicit context) is the socket's or OpenSSL's own error."""
    api_request = httpx2.Request("POST", API)
    core_error = ConnectionError(inner)
    core_error.__context__ = inner
    connect = httpx2.ConnectError(str(inner), request=api_request)
    connect.__cause__ = core_error
    error = anthropic.APIConnectionError(message=f"Connection failed: {inner}", request=api_request)
    error.__cause__ = connect
    return error


def untrusted() -> BaseException:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    error.verify_message = "self-signed certificate in certificate chain"
    return wrapped(error)


def unresolved() -> BaseException:
    return wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))


def reached_gate(clock: AutoClock) -> RequestGate:
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    gate.record_success()  # an earlier call of the run got through
    return gate


async def test_overloads_are_waited_out_by_time_and_spend_no_attempts() -> None:
    clock = AutoClock()
    script = Script(clock, *[overloaded() for _ in range(20)])
    result, _ = await run(script, clock, retry_settings(max_attempts=3, max_total_seconds=900.0))
    assert result == "ok" and len(script.started) == 21


async def test_sixty_seconds_of_429s_then_a_one_second_outage_then_the_api_is_back() -> None:
    clock = AutoClock()
    storm = [rate_limited(2.0) for _ in range(32)]  # 64 s of "later", as in the report
    outage = [refused(), refused()]
    script = Script(clock, *storm, *outage)
    result, recorder = await run(script, clock, retry_settings(max_attempts=8), reached_gate(clock))
    assert result == "ok" and len(script.started) == 35
    assert [i.kind for i, _, _ in recorder.retries][-2:] == ["connection", "connection"]


async def test_a_streak_of_connection_errors_is_counted_and_an_answer_from_the_server_ends_it() -> None:
    clock = AutoClock()
    streaks = [refused(), refused(), rate_limited(), refused(), refused(), overloaded(), refused(), refused()]
    result, _ = await run(Script(clock, *streaks), clock, retry_settings(max_attempts=3), reached_gate(clock))
    assert result == "ok"
    with pytest.raises(RetriesExhausted) as raised:
        await run(Script(clock, *[refused()] * 5), clock, retry_settings(max_attempts=3), reached_gate(clock))
    assert raised.value.attempts == 3 and raised.value.info.kind == "connection"


async def test_a_run_that_never_reached_the_api_stops_instead_of_failing_agent_by_agent() -> None:
    clock = AutoClock()
    with pytest.raises(NonRetryableError) as raised:
        await run(Script(clock, *[refused()] * 10), clock, retry_settings(max_attempts=3))
    info = raised.value.info
    assert info.fatal_for_run and not info.retryable
    assert info.message.startswith("no call of this run has reached the API")
    assert "3 tries" in info.message and "HTTPS_PROXY" in info.message


async def test_an_untrusted_certificate_ends_the_run_at_once_naming_host_cause_and_fix() -> None:
    clock = AutoClock()
    script = Script(clock, untrusted(), untrusted())
    with pytest.raises(NonRetryableError) as raised:
        await run(script, clock, retry_settings(), reached_gate(clock))
    assert len(script.started) == 1 and clock.sleeps == []
    info = raised.value.info
    assert info.kind == "certificate" and info.fatal_for_run
    for words in ("api.example.test:8443", "self-signed certificate", "SSL_CERT_FILE", "--trust system"):
        assert words in info.message


async def test_a_host_that_does_not_resolve_is_confirmed_then_ends_the_run_naming_it() -> None:
    clock = AutoClock()
    script = Script(clock, *[unresolved()] * 10)
    with pytest.raises(NonRetryableError) as raised:
        await run(script, clock, retry_settings(max_attempts=8), reached_gate(clock))
    assert len(script.started) == DNS_CONFIRMATIONS
    assert clock.now - script.started[0][1] < 15
    info = raised.value.info
    assert info.kind == "dns" and info.fatal_for_run
    assert "api.example.test" in info.message and "does not resolve" in info.message
    assert "--simulate" in info.message


@pytest.mark.parametrize("make", [untrusted, unresolved])
def test_the_cause_is_found_wherever_the_sdk_puts_it(make: object) -> None:
    error = make()  # type: ignore[operator]
    info = classify(error)
    assert info is not None and info.kind in ("certificate", "dns")
    bare = httpx2.ConnectError("boom", request=httpx2.Request("POST", API))
    bare.__cause__ = error.__cause__.__cause__.__context__  # only the innermost, as a cause
    assert (classify(bare) or info).kind == info.kind
    assert classify(refused()) is not None and classify(refused()).kind == "connection"  # type: ignore[union-attr]


async def test_an_api_that_answered_only_429s_was_reached() -> None:
    clock = AutoClock()
    gate = RequestGate(4, clock=clock, sleep=clock.sleep)
    with pytest.raises(RetriesExhausted):  # the agent gives up; the run is not declared unreachable
        await run(
            Script(clock, rate_limited(), *[refused()] * 5), clock, retry_settings(max_attempts=3), gate
        )
    assert gate.reached
