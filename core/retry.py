"""Which API failures are retried, how long to wait, and one gate that paces every agent.

The SDK's own retries are switched off (``max_retries=0``) so that every retry happens here, where
it can be seen (an event per retry), bounded (attempts and total time from :class:`RetrySettings`)
and coordinated (when the server says wait, *no* agent sends before the wait is over).

Attempts are numbered from 1. ``on_retry(info, attempt, wait)`` names the attempt that failed;
the next one is ``attempt + 1``.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import anthropic
import httpx2

from core.config import RetrySettings

T = TypeVar("T")

AUTH_MESSAGE = "the API rejected the key (401 authentication_error): check ANTHROPIC_API_KEY"

# 429 error codes that mean "money, not speed": retrying cannot succeed until a human acts.
SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached", "contract_spend_limit_reached"})
# ``event: error`` types (mid-stream, HTTP 200) that a retry cannot fix.
PERMANENT_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "billing_error",
    }
)
_STATUS_KINDS = {
    400: "bad_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    413: "too_large",
}
_RETRYABLE_5XX_EXCLUDED = frozenset({501, 505})  # "not implemented" and "version not supported" are permanent
_MAX_HEADER_HOLD_S = 300.0  # a `-reset` further away than this is treated as bogus, not obeyed


@dataclass(frozen=True)
class ErrorInfo:
    """A failure of one API attempt, reduced to what retrying, events and the UI need."""

    kind: str
    status_code: int | None
    retryable: bool
    fatal_for_run: bool
    retry_after_s: float | None
    request_id: str | None
    message: str
    error_type: str | None


class StreamIncomplete(Exception):
    """A stream that ended cleanly but without ``message_stop``: the SDK raises nothing for it.

    The session raises this when the final message has no stop reason; it is retried like a
    stream that broke off.
    """


class NonRetryableError(Exception):
    """An API error a retry cannot fix (400, 401, 403, 404, 413, spend limit, ...)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(_describe(info))
        self.info = info


class RetriesExhausted(Exception):
    """Retryable failures went on past ``max_attempts`` or ``max_total_seconds``."""

    def __init__(self, info: ErrorInfo, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempt(s): {_describe(info)}")
        self.info = info
        self.attempts = attempts


def _describe(info: ErrorInfo) -> str:
    status = f" {info.status_code}" if info.status_code is not None else ""
    request = f" (request-id {info.request_id})" if info.request_id else ""
    return f"{info.kind}{status}: {info.message}{request}"


# --- classification -----------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms`` first, then ``retry-after``.

    ``retry-after`` may be seconds (a float is accepted, as the SDK does) or an HTTP-date. A date
    in the past gives 0.0; an absent or unreadable header gives None.
    """
    if headers is None:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _finite_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _finite_float(raw)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    wall = time.time() if now is None else now
    return max(0.0, when.timestamp() - wall)


def _finite_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def classify(exc: BaseException) -> ErrorInfo | None:
    """Classify an API or transport failure; None for anything else (a bug: let it propagate)."""
    if isinstance(exc, anthropic.APIStatusError):
        return _classify_status(exc)
    if isinstance(exc, anthropic.APITimeoutError):
        return _transport("timeout", exc)
    if isinstance(exc, anthropic.APIConnectionError):
        return _transport("connection", exc)
    if isinstance(exc, httpx2.TimeoutException):  # raised raw while reading a streamed body
        return _transport("timeout", exc)
    if isinstance(exc, httpx2.TransportError | httpx2.DecodingError | StreamIncomplete):
        return _transport("stream_broken", exc)
    if isinstance(exc, anthropic.APIError):  # e.g. a response that fails validation
        return ErrorInfo("other", None, False, False, None, None, str(exc), None)
    return None


def _transport(kind: str, exc: BaseException) -> ErrorInfo:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({type(cause).__name__}: {cause})"
    return ErrorInfo(kind, None, True, False, None, None, text, None)


def _classify_status(exc: anthropic.APIStatusError) -> ErrorInfo:
    status = exc.status_code
    error_type = exc.type if isinstance(exc.type, str) else None
    message = exc.api_message or exc.message
    request_id = exc.request_id or _body_request_id(exc.body)
    retry_after = parse_retry_after(exc.response.headers) if status != 200 else None

    def info(kind: str, retryable: bool, *, fatal: bool = False, text: str = message) -> ErrorInfo:
        return ErrorInfo(kind, status, retryable, fatal, retry_after, request_id, text, error_type)

    if status == 200:  # an `event: error` frame inside a stream that started fine
        return info("stream_error", error_type not in PERMANENT_ERROR_TYPES)
    if status == 401:
        return info("authentication", False, fatal=True, text=AUTH_MESSAGE)
    if status == 429:
        if exc.error_code in SPEND_LIMIT_CODES:
            return info("spend_limit", False)
        return info("rate_limit", True)
    if status == 529:
        return info("overloaded", True)
    if status == 408:  # the server timed out waiting for us: transient, unlike other 4xx
        return info("timeout", True)
    if status in _STATUS_KINDS:
        return info(_STATUS_KINDS[status], False)
    if status >= 500:
        return info("server_error", status not in _RETRYABLE_5XX_EXCLUDED)
    return info("other", False)


def _body_request_id(body: object) -> str | None:
    if isinstance(body, dict):
        value = body.get("request_id")
        return value if isinstance(value, str) else None
    return None


# --- how long to wait ---------------------------------------------------------------------------


class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and total time; the server wins."""

    RETRY_AFTER_JITTER_S = 0.25  # at most this much is added to a server's wait, to de-synchronise agents

    def __init__(self, settings: RetrySettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))] after attempt ``attempt``."""
        exponent = min(max(attempt - 1, 0), 62)
        ceiling = min(self.settings.max_delay_s, self.settings.base_delay_s * 2.0**exponent)
        return self._rng.uniform(0.0, ceiling)

    def delay_for(self, info: ErrorInfo, attempt: int) -> float:
        """The server's ``retry-after`` (never less, plus a little jitter) when given, else backoff."""
        if info.retry_after_s is not None and info.retry_after_s > 0:
            extra = min(self.RETRY_AFTER_JITTER_S, 0.1 * info.retry_after_s)
            return info.retry_after_s + self._rng.uniform(0.0, extra)
        return self.backoff(attempt)

    def should_retry(self, info: ErrorInfo, attempt: int, elapsed_s: float, wait_s: float = 0.0) -> bool:
        """Retry after failed ``attempt`` unless it is permanent or a bound would be crossed.

        ``elapsed_s`` counts from the first attempt; with ``wait_s`` given, a wait that would end
        past ``max_total_seconds`` is refused now rather than slept through in vain.
        """
        if not info.retryable:
            return False
        if attempt >= self.settings.max_attempts:
            return False
        return elapsed_s + wait_s < self.settings.max_total_seconds


# --- the gate shared by all agents --------------------------------------------------------------


class RequestGate:
    """Paces every API attempt of every agent: server-imposed holds plus AIMD concurrency.

    * ``hold_until(deadline)``: no slot is granted before the (monotonic) deadline; afterwards the
      next ``max_concurrency`` grants are spaced ``release_spacing_s`` apart, not released as a herd.
    * concurrency: halved on 429/529 or when ``anthropic-ratelimit-*-remaining`` runs low (at
      most once per ``decrease_cooldown_s``, since one burst fails many calls at once), grown by
      ``1/limit`` per success (about +1 per round of ``limit`` successes);
    * a ``-remaining`` of 0 holds everyone until that limit's ``-reset`` time.
    """

    LIMIT_FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")

    def __init__(
        self,
        max_concurrency: int = 8,
        *,
        min_concurrency: int = 1,
        low_water_fraction: float = 0.1,
        release_spacing_s: float = 0.05,
        decrease_cooldown_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_concurrency < 1 or not 1 <= min_concurrency <= max_concurrency:
            raise ValueError("need 1 <= min_concurrency <= max_concurrency")
        self.max_concurrency = max_concurrency
        self.min_concurrency = min_concurrency
        self.low_water_fraction = low_water_fraction
        self.release_spacing_s = release_spacing_s
        self.decrease_cooldown_s = decrease_cooldown_s
        self.clock = clock
        self.sleep = sleep
        self._wall_clock = wall_clock
        self._limit = float(max_concurrency)
        self._in_flight = 0
        self._held_until = -math.inf
        self._paced_grants = 0  # how many grants after a hold are still spaced out
        self._next_grant_at = -math.inf
        self._last_decrease = -math.inf
        self._waiters: list[asyncio.Future[None]] = []
        self._waiting = 0

    # -- state for the UI and benchmarks --

    @property
    def limit(self) -> int:
        return max(self.min_concurrency, int(self._limit))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def held_until(self) -> float | None:
        """The monotonic deadline of the current hold, or None when nobody is held."""
        return self._held_until if self._held_until > self.clock() else None

    @property
    def waiting(self) -> int:
        """Attempts queued for a slot (held back by a hold, pacing or the limit)."""
        return self._waiting

    # -- slots --

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for the hold to end and for a free slot; hold it around one API attempt."""
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._wake()

    async def _acquire(self) -> None:
        self._waiting += 1
        try:
            await self._wait_for_turn()
        finally:
            self._waiting -= 1

    async def _wait_for_turn(self) -> None:
        while True:
            now = self.clock()
            ready_at = max(self._held_until, self._next_grant_at)
            if now < ready_at:
                await self.sleep(ready_at - now)
                continue
            if self._in_flight >= self.limit:
                await self._wait_for_change()
                continue
            self._in_flight += 1
            if self._paced_grants > 0:
                self._paced_grants -= 1
                self._next_grant_at = now + self.release_spacing_s
            return

    async def _wait_for_change(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    # -- what the server told us --

    def hold_until(self, deadline: float) -> None:
        """Nobody gets a slot before ``deadline`` (monotonic, this gate's clock); holds only extend."""
        if deadline <= self._held_until:
            return
        self._held_until = deadline
        self._paced_grants = self.max_concurrency
        self._wake()

    def record_failure(self, info: ErrorInfo, wait_s: float) -> None:
        """A failed attempt: hold everyone when the server said wait (or rate-limited us); back off."""
        now = self.clock()
        rate_limited = info.kind == "rate_limit" or info.error_type == "rate_limit_error"
        if rate_limited or (info.retryable and info.retry_after_s is not None):
            self.hold_until(now + wait_s)
        if rate_limited or info.kind == "overloaded" or info.error_type == "overloaded_error":
            self._decrease(now)

    def record_success(self) -> None:
        """Additive increase: about one more slot per ``limit`` successful attempts."""
        if self._limit < self.max_concurrency:
            self._limit = min(float(self.max_concurrency), self._limit + 1.0 / self._limit)
            self._wake()

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Adapt to ``anthropic-ratelimit-*``: shrink when a budget runs low, hold when it is spent."""
        lowered = {k.lower(): v for k, v in headers.items()}
        now = self.clock()
        low = False
        for family in self.LIMIT_FAMILIES:
            prefix = f"anthropic-ratelimit-{family}-"
            limit = _finite_float(lowered.get(prefix + "limit"))
            remaining = _finite_float(lowered.get(prefix + "remaining"))
            if remaining is None:
                continue
            if remaining <= 0:
                reset_in = self._seconds_until(lowered.get(prefix + "reset"))
                if reset_in is not None and 0 < reset_in <= _MAX_HEADER_HOLD_S:
                    self.hold_until(now + reset_in)
                low = True
            elif limit is not None and limit > 0 and remaining / limit < self.low_water_fraction:
                low = True
        if low:
            self._decrease(now)

    def _seconds_until(self, rfc3339: str | None) -> float | None:
        if not rfc3339:
            return None
        try:
            moment = datetime.fromisoformat(rfc3339.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return moment.timestamp() - self._wall_clock()

    def _decrease(self, now: float) -> None:
        if now - self._last_decrease < self.decrease_cooldown_s:
            return
        self._last_decrease = now
        self._limit = max(float(self.min_concurrency), math.floor(self._limit / 2))


# --- the loop -----------------------------------------------------------------------------------


async def call_with_retries(
    attempt_fn: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    gate: RequestGate,
    on_retry: Callable[[ErrorInfo, int, float], None],
    on_give_up: Callable[[ErrorInfo], None] | None = None,
) -> T:
    """Run ``attempt_fn(attempt)`` inside ``gate.slot()`` until it succeeds or retrying must stop.

    Contract for ``attempt_fn``: it makes one complete API call (request *and* the whole stream)
    and returns its result; it should hand the response headers to ``gate.observe_headers`` as
    soon as it has them (error responses are observed here). Anything it raises that
    :func:`classify` does not recognise (a bug, a budget stop) propagates untouched, and so does
    cancellation, at once, mid-attempt or mid-wait.

    Raises :class:`NonRetryableError` for a permanent error and :class:`RetriesExhausted` when the
    attempt or time bound is reached; ``on_give_up`` is called just before either.
    """
    started = gate.clock()
    attempt = 1
    while True:
        try:
            async with gate.slot():
                result = await attempt_fn(attempt)
        except Exception as exc:
            info = classify(exc)
            if info is None:
                raise
            if isinstance(exc, anthropic.APIStatusError) and exc.status_code != 200:
                gate.observe_headers(exc.response.headers)
            if not info.retryable:
                if on_give_up is not None:
                    on_give_up(info)
                raise NonRetryableError(info) from exc
            wait = policy.delay_for(info, attempt)
            gate.record_failure(info, wait)  # even when we give up: the others must still wait
            if not policy.should_retry(info, attempt, gate.clock() - started, wait):
                if on_give_up is not None:
                    on_give_up(info)
                raise RetriesExhausted(info, attempt) from exc
            on_retry(info, attempt, wait)
            await gate.sleep(wait)
            attempt += 1
        else:
            gate.record_success()
            return result
