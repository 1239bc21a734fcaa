"""Which API failures are retried, how long to wait, and one gate that paces every agent.

The SDK's own retries are switched off (``max_retries=0``) so that every retry happens here, where
it can be seen (an event per retry), bounded (attempts and total time from :class:`RetrySettings`)
and coordinated (when the server says wait, *no* agent sends before the wait is over; near a rate
limit, attempts are paced to the limit's refill rather than sent in bursts that earn 429s).

Attempts are numbered from 1. ``on_retry(info, attempt, wait)`` names the attempt that failed;
the next one is ``attempt + 1``.

Wait by time, count by kind: a server that says "later" (429, 529, ``overloaded_error``) is waited
out within ``max_total_seconds`` and spends no attempts; connection errors, timeouts and 5xx count
``max_attempts`` per streak (a wait answered by the server ends a streak, a success the call). A
host name that does not resolve is confirmed a few times, then ends the run like a certificate
this machine does not trust (:mod:`core.api.reachability`); so does any failure to connect when
no call of the run has ever reached the API.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from core.api.attempt import AttemptProgress
from core.api.failure import Ending, Failure, failure_of
from core.api.reachability import DNS_CONFIRMATIONS, Reach, explained, unreachable_of
from core.api.transport import ApiStatus
from core.config.model import RetrySettings
from core.errors import ResearchOrchestratorError

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
FIRST_CALL_FATAL_STATUSES = frozenset({400, 403, 404})
"""Statuses that end the run when an agent's first call meets them (see ``first_call_refusal``)."""
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


class NonRetryableError(ResearchOrchestratorError):
    """An API error a retry cannot fix (400, 401, 403, 404, 413, spend limit, ...)."""

    def __init__(self, info: ErrorInfo) -> None:
        super().__init__(_describe(info))
        self.info = info


class RetriesExhausted(ResearchOrchestratorError):
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


def classify(exc: BaseException, progress: AttemptProgress | None = None) -> ErrorInfo | None:
    """Classify an API or transport failure; None for anything else (a bug: let it propagate).

    Read from what happened, not from the SDK class on top (:func:`core.api.failure.failure_of`
    walks the chain): a connection that failed after the stream had begun (``progress.responded``)
    is a broken stream; before that, a connection failure. Without ``progress`` nothing is known
    to have begun.
    """
    failure = failure_of(exc)
    if failure is None:
        return None
    unreachable = unreachable_of(exc)
    if unreachable is not None:  # no retry makes a host resolve or a certificate trusted (dns: confirmed)
        final = unreachable.reach is Reach.UNTRUSTED
        return ErrorInfo(unreachable.kind, None, not final, final, None, None, unreachable.message(), None)
    match failure.ending:
        case Ending.STATUS:
            assert failure.status is not None
            return _classify_status(failure.status)
        case Ending.NOT_SENT:
            return _transport("connection", exc, failure)
        case Ending.TIMED_OUT:
            return _transport("timeout", exc, failure)
        case Ending.BROKEN:
            began = progress is not None and progress.responded
            return _transport("stream_broken" if began else "connection", exc, failure)
        case Ending.OTHER_API:  # e.g. a response that fails validation
            return ErrorInfo("other", None, False, False, None, None, str(exc), None)


def _transport(kind: str, exc: BaseException, failure: Failure) -> ErrorInfo:
    text = str(exc) or type(exc).__name__
    for link in (exc.__cause__, failure.error):
        if link is not None and link is not exc and str(link) and str(link) not in text:
            text = f"{text} ({type(link).__name__}: {link})"
    return ErrorInfo(kind, None, True, False, None, None, text, None)


def _classify_status(status: ApiStatus) -> ErrorInfo:
    code = status.status_code
    error_type = status.error_type
    message = status.message
    request_id = status.request_id
    retry_after = parse_retry_after(status.headers) if code != 200 else None

    def info(kind: str, retryable: bool, *, fatal: bool = False, text: str = message) -> ErrorInfo:
        return ErrorInfo(kind, code, retryable, fatal, retry_after, request_id, text, error_type)

    if code == 200:  # an `event: error` frame inside a stream that started fine
        return info("stream_error", error_type not in PERMANENT_ERROR_TYPES)
    if code == 401:
        return info("authentication", False, fatal=True, text=AUTH_MESSAGE)
    if code == 404 and error_type == "not_found_error" and message.startswith("model:"):
        return info("not_found", False, fatal=True, text=unknown_model_message(message))
    if code == 429:
        if status.error_code in SPEND_LIMIT_CODES:
            return info("spend_limit", False)
        return info("rate_limit", True)
    if code == 529:
        return info("overloaded", True)
    if code == 408:  # the server timed out waiting for us: transient, unlike other 4xx
        return info("timeout", True)
    if code in _STATUS_KINDS:
        return info(_STATUS_KINDS[code], False)
    if code >= 500:
        return info("server_error", code not in _RETRYABLE_5XX_EXCLUDED)
    return info("other", False)


def unknown_model_message(api_message: str) -> str:
    """The API's ``model: NAME`` 404, said so that a user knows what to change."""
    model = api_message.partition(":")[2].strip()
    return (
        f"the API does not know the model '{model}' (404 not_found_error): set a model id it serves "
        "in the config (`research-orchestrator validate` lists the ones this product knows)"
    )


def first_call_refusal(info: ErrorInfo) -> ErrorInfo:
    """A 4xx on an agent's first call is the request's shape, not the conversation: every agent would
    meet it, so it ends the run like a 401, naming the field the API named."""
    if info.fatal_for_run or info.retryable or info.status_code not in FIRST_CALL_FATAL_STATUSES:
        return info
    if info.message.startswith("prompt is too long"):  # this agent's own input, not the config
        return info
    text = (
        f"the API refused the first request ({info.status_code} {info.error_type or info.kind}): "
        f"{info.message}; fix the config (model, max_tokens, tools) and start again"
    )
    return replace(info, fatal_for_run=True, message=text)


def is_rate_limit(info: ErrorInfo) -> bool:
    """A 429 (or a mid-stream ``rate_limit_error``): the server will take the request later."""
    return info.kind == "rate_limit" or info.error_type == "rate_limit_error"


def is_wait(info: ErrorInfo) -> bool:
    """The server answered "later" (rate limited or overloaded): waited out by time, never counted."""
    return is_rate_limit(info) or info.kind == "overloaded" or info.error_type == "overloaded_error"


_UNREACHED_KINDS = frozenset({"connection", "timeout", "dns"})


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
        """Retry after failed ``attempt`` (of its streak) unless it is permanent or a bound would be crossed.

        A rate limit or an overload is the server saying "later", not "broken": its retries are
        bounded by time only (``max_total_seconds``, each wait as ``retry-after`` asks), never by a
        count. A name that does not resolve is tried :data:`DNS_CONFIRMATIONS` times.

        ``elapsed_s`` counts from the first attempt; with ``wait_s`` given, a wait that would end
        past ``max_total_seconds`` is refused now rather than slept through in vain.
        """
        if not info.retryable:
            return False
        limit = DNS_CONFIRMATIONS if info.kind == Reach.UNRESOLVED.value else self.settings.max_attempts
        if attempt >= limit and not is_wait(info):
            return False
        return elapsed_s + wait_s < self.settings.max_total_seconds


# --- the gate shared by all agents --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestCost:
    """What one attempt will likely draw from each rate limit, so that it waits its turn for it.

    A token count left ``None`` means "about what recent attempts drew", learned from the
    ``anthropic-ratelimit-*`` headers; give it when known (the prompt's size, ``max_tokens``).
    """

    requests: float = 1.0
    input_tokens: float | None = None
    output_tokens: float | None = None

    def amount(self, family: str) -> float | None:
        """The draw on one header family (``requests``, ``input-tokens``, ...); None = unknown."""
        if family == "requests":
            return self.requests
        if family == "input-tokens":
            return self.input_tokens
        if family == "output-tokens":
            return self.output_tokens
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0.0) + (self.output_tokens or 0.0)


ONE_REQUEST = RequestCost()
_TOKEN_FAMILIES = frozenset({"tokens", "input-tokens", "output-tokens"})


@dataclass(frozen=True, slots=True)
class _Grant:
    """One granted slot: what it drew, and the running totals drawn up to and including it."""

    gate: int  # id() of the granting gate: headers seen inside another gate's slot are not ours
    seq: int
    draws: dict[str, float]
    drawn_through: dict[str, float]


_current_grant: ContextVar[_Grant | None] = ContextVar("request_gate_grant", default=None)


class _LimitMirror:
    """Our picture of the server's bucket for one limit: refills continuously at ``limit / 60`` a second.

    Every grant draws what its attempt will likely cost; every response's headers reset the level to
    the reported ``-remaining`` less what was granted after that request (the server had not seen
    it yet). Headers are read after the fact, so the picture errs on the empty side: safe for 429s.
    """

    LEARNING_RATE = 0.25  # weight of one attempt's cost in the running average
    LEARN_BELOW_FRACTION = 0.9  # above this the bucket may have been full meanwhile: usage unreadable
    LEARN_MIN_DROP = 4000.0  # read rounded counts (nearest 1,000) only across a drop this large...
    LEARN_MAX_ATTEMPTS = 16  # ...or across this many attempts

    def __init__(self, limit: float, now: float) -> None:
        self.limit = limit
        self.level = limit
        self.updated = now
        self.synced_seq = -1
        self.unit_cost: float | None = None  # learned draw of an attempt without a hint
        self._anchor: tuple[int, float, float] | None = None  # (seq, remaining, when) of the last sync

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.limit, self.level + (now - self.updated) * self.limit / 60.0)
            self.updated = now

    def level_at(self, now: float) -> float:
        """The level now (negative: in debt, or more granted than the server has seen)."""
        self.refill(now)
        return self.level

    def ready_at(self, now: float, amount: float) -> float:
        """When ``amount`` (at most the whole bucket, which is all the server asks for) is there."""
        self.refill(now)
        missing = min(amount, self.limit) - self.level
        return now if missing <= 0 else now + missing * 60.0 / self.limit

    def sync(self, limit: float, remaining: float, seq: int, pending: float, now: float, learn: bool) -> None:
        """Take the server's word (``remaining`` after request ``seq``; ``pending`` granted since)."""
        if learn:
            self._learn(seq, remaining, now, rounded=limit >= 1000)
        self.limit = limit
        self.level = min(limit, remaining) - pending
        self.updated = now
        self.synced_seq = seq

    def _learn(self, seq: int, remaining: float, now: float, *, rounded: bool) -> None:
        """Average draw per attempt, from how far the bucket fell between two syncs (net of refill)."""
        anchor = self._anchor
        if anchor is None:
            self._anchor = (seq, remaining, now)
            return
        if seq <= anchor[0]:
            return
        seq_then, remaining_then, then = anchor
        expected = remaining_then + (now - then) * self.limit / 60.0  # with nothing drawn meanwhile
        if expected > self.LEARN_BELOW_FRACTION * self.limit or now - then > 60.0:
            self._anchor = (seq, remaining, now)
            return
        attempts = seq - seq_then
        if rounded and expected - remaining < self.LEARN_MIN_DROP and attempts < self.LEARN_MAX_ATTEMPTS:
            return  # keep the anchor: too small a drop to read through the rounding yet
        self._anchor = (seq, remaining, now)
        sample = max(0.0, (expected - remaining) / attempts)
        if self.unit_cost is None:
            self.unit_cost = sample
        else:
            weight = 1.0 - (1.0 - self.LEARNING_RATE) ** attempts
            self.unit_cost += weight * (sample - self.unit_cost)


class RequestGate:
    """Paces every API attempt of every agent: rate-limit pacing, server holds, AIMD concurrency.

    * pacing: each limit whose ``anthropic-ratelimit-*-limit`` and ``-remaining`` are known is
      mirrored as the server's token bucket (:class:`_LimitMirror`). A slot is granted only when
      every mirrored bucket holds what the attempt will draw (:class:`RequestCost`), so a binding
      limit spaces grants ``cost * 60 / limit`` seconds apart (1.2 s at 50 requests a minute) and
      never lets more attempts go than ``-remaining`` allows, while a limit far from binding adds
      no delay at all. A spent limit is paced back in, not held until its ``-reset`` (when the
      bucket is *full* again); only a limit of unknown size falls back to holding until ``-reset``.
    * ``hold_until(deadline)``: no slot is granted before the (monotonic) deadline; afterwards the
      next ``max_concurrency`` grants are spaced at least ``release_spacing_s`` apart (and by the
      pacing, which 429 responses' headers have just synced), not released as a herd.
    * concurrency: halved on 429/529 (at most once per ``decrease_cooldown_s``, since one burst
      fails many calls at once), grown by ``1/limit`` per success (about +1 per ``limit`` successes).
    """

    LIMIT_FAMILIES = ("requests", "tokens", "input-tokens", "output-tokens")
    # An attempt of unknown size waits for twice the average in the bucket: a larger than average
    # prompt then still fits. It costs a standing reserve of one average, not throughput.
    GUESS_SAFETY = 2.0

    def __init__(
        self,
        max_concurrency: int = 8,
        *,
        min_concurrency: int = 1,
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
        self._mirrors: dict[str, _LimitMirror] = {}
        self._seq = 0
        self._drawn: dict[str, float] = {}  # running totals drawn per family, all grants
        self._drawn_in_flight: dict[str, float] = {}
        self.reached = False  # the API has answered an attempt through this gate

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

    def paced_until(self, cost: RequestCost = ONE_REQUEST) -> float | None:
        """When the rate limits as mirrored would next admit ``cost``; None when they would now."""
        now = self.clock()
        ready = self._paced_at(now, self._draws(cost))
        return ready if ready > now else None

    # -- slots --

    @asynccontextmanager
    async def slot(self, cost: RequestCost = ONE_REQUEST) -> AsyncIterator[None]:
        """Wait for the hold, the pacing and a free slot; hold it around one API attempt.

        Headers given to :meth:`observe_headers` inside the slot are matched to this attempt.
        """
        grant = await self._acquire(cost)
        token = _current_grant.set(grant)
        try:
            yield
        finally:
            _current_grant.reset(token)
            self._in_flight -= 1
            for family, amount in grant.draws.items():
                self._drawn_in_flight[family] -= amount
            self._wake()

    async def _acquire(self, cost: RequestCost) -> _Grant:
        self._waiting += 1
        try:
            return await self._wait_for_turn(cost)
        finally:
            self._waiting -= 1

    async def _wait_for_turn(self, cost: RequestCost) -> _Grant:
        while True:
            now = self.clock()
            draws = self._draws(cost)
            ready_at = max(self._held_until, self._next_grant_at, self._paced_at(now, draws))
            if now < ready_at:
                await self._nap(ready_at - now)
                continue
            if self._in_flight >= self.limit:
                await self._wait_for_change()
                continue
            self._in_flight += 1
            if self._paced_grants > 0:
                self._paced_grants -= 1
                self._next_grant_at = now + self.release_spacing_s
            return self._grant(draws)

    def _draws(self, cost: RequestCost) -> dict[str, tuple[float, float]]:
        """Per mirrored limit: (what the attempt draws, what must be in the bucket before it goes)."""
        draws: dict[str, tuple[float, float]] = {}
        for family, mirror in self._mirrors.items():
            amount = cost.amount(family)
            if amount is None:
                guess = mirror.unit_cost or 0.0
                draws[family] = (guess, guess * self.GUESS_SAFETY)
            else:
                draws[family] = (amount, amount)
        return draws

    def _paced_at(self, now: float, draws: Mapping[str, tuple[float, float]]) -> float:
        ready = -math.inf
        for family, (_, needed) in draws.items():
            ready = max(ready, self._mirrors[family].ready_at(now, needed))
        return ready

    def _grant(self, draws: Mapping[str, tuple[float, float]]) -> _Grant:
        self._seq += 1
        amounts = {family: amount for family, (amount, _) in draws.items()}
        for family, amount in amounts.items():
            self._mirrors[family].level -= amount
            self._drawn[family] = self._drawn.get(family, 0.0) + amount
            self._drawn_in_flight[family] = self._drawn_in_flight.get(family, 0.0) + amount
        return _Grant(id(self), self._seq, amounts, dict(self._drawn))

    async def _nap(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when something changes (a hold, new headers, a freed slot)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait((future, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if future in self._waiters:
                self._waiters.remove(future)

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
        if info.status_code is not None:
            self.reached = True  # the server answered, if only "later"
        now = self.clock()
        rate_limited = info.kind == "rate_limit" or info.error_type == "rate_limit_error"
        if rate_limited or (info.retryable and info.retry_after_s is not None):
            self.hold_until(now + wait_s)
        if rate_limited or info.kind == "overloaded" or info.error_type == "overloaded_error":
            self._decrease(now)

    def record_success(self) -> None:
        """Additive increase: about one more slot per ``limit`` successful attempts."""
        self.reached = True
        if self._limit < self.max_concurrency:
            self._limit = min(float(self.max_concurrency), self._limit + 1.0 / self._limit)
            self._wake()

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Sync the pacing with ``anthropic-ratelimit-*`` (of the attempt whose slot we are in)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        now = self.clock()
        grant = _current_grant.get()
        if grant is not None and grant.gate != id(self):
            grant = None
        split = any(
            f"anthropic-ratelimit-{f}-remaining" in lowered for f in ("input-tokens", "output-tokens")
        )
        roomier = False
        for family in self.LIMIT_FAMILIES:
            if family == "tokens" and split:
                continue  # then it only repeats the tighter of the two, whose size it keeps switching
            prefix = f"anthropic-ratelimit-{family}-"
            limit = _finite_float(lowered.get(prefix + "limit"))
            remaining = _finite_float(lowered.get(prefix + "remaining"))
            if remaining is None:
                continue
            if limit is not None and limit > 0:
                if remaining <= 0:  # the bucket may be in debt, which -remaining hides; -reset does not
                    remaining = min(0.0, self._level_from_reset(limit, lowered.get(prefix + "reset")))
                roomier = self._sync(family, limit, remaining, grant, now) or roomier
            elif remaining <= 0:  # a bucket of unknown size cannot be paced: wait until it is full
                reset_in = self._seconds_until(lowered.get(prefix + "reset"))
                if reset_in is not None and 0 < reset_in <= _MAX_HEADER_HOLD_S:
                    self.hold_until(now + reset_in)
        if roomier:
            self._wake()

    def _sync(self, family: str, limit: float, remaining: float, grant: _Grant | None, now: float) -> bool:
        """Sync one mirror; True when that frees up room (paced waiters should look again)."""
        mirror = self._mirrors.get(family)
        if mirror is None:
            mirror = self._mirrors[family] = _LimitMirror(limit, now)
        if grant is None:  # headers from outside a slot: assume every attempt in flight is unseen
            seq, pending = self._seq, self._drawn_in_flight.get(family, 0.0)
        else:
            seq = grant.seq
            pending = self._drawn.get(family, 0.0) - grant.drawn_through.get(family, 0.0)
        if seq < mirror.synced_seq:
            return False  # older news than the mirror already has
        level = remaining
        if family in _TOKEN_FAMILIES and remaining >= 1000 and remaining % 1000 == 0:
            level -= 500  # token counts are rounded to the nearest thousand: assume the worse half
        before = mirror.level_at(now)
        mirror.sync(limit, level, seq, pending, now, learn=family != "requests")
        return mirror.level > before

    def _level_from_reset(self, limit: float, reset: str | None) -> float:
        """The bucket's level now, from when it will be full (a timestamp cut to whole seconds)."""
        reset_in = self._seconds_until(reset)
        if reset_in is None or not 0 <= reset_in <= _MAX_HEADER_HOLD_S:
            return 0.0
        return limit - (reset_in + 1.0) * limit / 60.0

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
    attempt_fn: Callable[[AttemptProgress], Awaitable[T]],
    *,
    policy: RetryPolicy,
    gate: RequestGate,
    on_retry: Callable[[ErrorInfo, int, float], None],
    cost: RequestCost = ONE_REQUEST,
    before_attempt: Callable[[int], Awaitable[None]] | None = None,
) -> T:
    """Run ``attempt_fn(progress)`` inside ``gate.slot(cost)`` until it succeeds or retrying must stop.

    Contract for ``attempt_fn``: it makes one complete API call (request *and* the whole stream)
    and returns its result, recording in ``progress`` (a fresh :class:`AttemptProgress` per
    attempt, numbered) what it observed: a failure is classified from that and the error. It
    should hand the response headers to ``gate.observe_headers`` (from inside the attempt, so that
    the gate knows which attempt they describe) as soon as it has them (error responses are
    observed here). ``cost`` is what one attempt will likely draw from the
    rate limits (default: one request, tokens as recent attempts drew). Anything it raises that
    :func:`classify` does not recognise (a bug, a budget stop) propagates untouched, and so does
    cancellation, at once, mid-attempt or mid-wait.

    ``before_attempt(attempt)`` is awaited before each attempt, outside the slot (waiting there
    holds no slot another agent may need): the session reserves the attempt's budget in it, and
    whatever it raises (a budget stop) propagates untouched.

    Raises :class:`NonRetryableError` for a permanent error and :class:`RetriesExhausted` when the
    attempt or time bound is reached; both carry the last attempt's :class:`ErrorInfo`.
    """
    started = gate.clock()
    attempt = 1
    streak = 0  # failures of the kinds that count, since the server last answered
    while True:
        if before_attempt is not None:
            await before_attempt(attempt)
        progress = AttemptProgress(number=attempt)
        try:
            async with gate.slot(cost):
                try:
                    result = await attempt_fn(progress)
                except Exception as exc:
                    _observe_error_headers(gate, exc)  # inside the slot: matched to this attempt
                    raise
        except Exception as exc:
            info = classify(exc, progress)
            if info is None:
                raise
            if not info.retryable:
                if info.kind == Reach.UNTRUSTED.value and (unreachable := unreachable_of(exc)) is not None:
                    info = replace(info, message=await explained(unreachable))  # whose certificate
                raise NonRetryableError(info) from exc
            streak = 0 if is_wait(info) else streak + 1
            wait = policy.delay_for(info, max(streak, 1))
            gate.record_failure(info, wait)  # even when we give up: the others must still wait
            elapsed = gate.clock() - started
            if not policy.should_retry(info, max(streak, 1), elapsed, wait):
                if info.kind == Reach.UNRESOLVED.value or (
                    info.kind in _UNREACHED_KINDS and not gate.reached
                ):
                    raise NonRetryableError(_never_reached(info, attempt, elapsed, exc)) from exc
                raise RetriesExhausted(info, attempt) from exc
            on_retry(info, attempt, wait)
            await gate.sleep(wait)
            attempt += 1
        else:
            gate.record_success()
            return result


def _never_reached(info: ErrorInfo, attempts: int, elapsed: float, exc: BaseException) -> ErrorInfo:
    """No call of the run has reached the API: every agent would walk through its retries, layer
    after layer, to the same end. The run stops at once, saying so (exit 4, resumable)."""
    unreachable = unreachable_of(exc)
    if unreachable is not None:
        text = unreachable.message(tries=attempts, seconds=elapsed)
    else:
        text = (
            f"no call of this run has reached the API: {info.message} "
            f"({attempts} tries over {elapsed:.0f} s). Check the network, the address in "
            "ANTHROPIC_BASE_URL and, if your network needs one, the proxy in HTTPS_PROXY; then resume the run"
        )
    return replace(info, retryable=False, fatal_for_run=True, message=text)


def _observe_error_headers(gate: RequestGate, exc: BaseException) -> None:
    """An error status's ``anthropic-ratelimit-*`` headers pace the gate like a success's."""
    failure = failure_of(exc)
    status = failure.status if failure is not None else None
    if status is not None and status.status_code != 200:
        gate.observe_headers(status.headers)
