"""The HTTP surface: ``POST /v1/messages`` (streamed or not), ``POST /v1/messages/count_tokens`` and
``GET /_simulator/stats``, on aiohttp.

One ``SimulatorState`` holds what requests share (cache, rate limiter, fault counters, stats). A
request goes: auth, JSON, validation (paused-turn integrity included), context window, rate limit, injected
faults, cache accounting, the turn, then the response (paced) with the request's headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.config.simulator import SimulatorSettings
from core.simulator import sse
from core.simulator.caching import PromptCache, min_cacheable_tokens
from core.simulator.faults import FaultInjector, FaultPlan
from core.simulator.models import context_window
from core.simulator.ratelimit import RateLimiter
from core.simulator.responder import Turn, build_turn, request_digest
from core.simulator.stats import RequestRecord, SimulatorStats
from core.simulator.tokens import prompt_segments
from core.simulator.validation import InvalidRequest, check_headers, parse_request

_ERROR_STATUS = {"rate_limit": 429, "overloaded": 529, "server_error": 500, "invalid_request": 400}
_ERROR_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _conversation_of(messages: object) -> str:
    """A short id of the conversation a request belongs to: a digest of its first message's text."""
    try:
        first = messages[0]["content"]  # type: ignore[index]
        text = first if isinstance(first, str) else first[0]["text"]
    except (IndexError, KeyError, TypeError):
        return ""
    return hashlib.sha256(str(text).encode()).hexdigest()[:12]


class SimulatorState:
    """Everything requests share; one per running simulator."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        clock: Callable[[], float] = time.time,
        record_bodies: bool = False,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.cache = PromptCache(clock)
        self.limiter = RateLimiter(settings.rate_limits, clock)
        self.faults = FaultInjector(settings)
        self.stats = SimulatorStats(record_bodies)


def new_request_id() -> str:
    return "req_011C" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")[:20]


class _Outcome:
    """What the handler learnt about a request, for its log record."""

    def __init__(self, request_id: str, raw: bytes, path: str) -> None:
        self.request_id = request_id
        self.sha = hashlib.sha256(raw).hexdigest()
        self.path = path
        self.fault: str | None = None
        self.messages = 0
        self.stream = False
        self.stop_reason: str | None = None
        self.body: Any = None
        self.received_at = time.time()
        self.usage: dict[str, Any] | None = None


@web.middleware
async def _api_shaped_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes and unexpected failures still answer with the API's error body and headers."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, kind, message = exc.status, _ERROR_TYPE.get(exc.status, "invalid_request_error"), exc.reason
    except Exception:
        logger.exception("simulator failed on %s", request.path)
        status, kind, message = 500, "api_error", "Internal server error"
    request_id = new_request_id()
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return web.json_response(body, status=status, headers={"request-id": request_id})


def create_app(state: SimulatorState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_api_shaped_errors])
    handlers = _Handlers(state)
    app.router.add_post("/v1/messages", handlers.messages)
    app.router.add_post("/v1/messages/count_tokens", handlers.count_tokens)
    app.router.add_get("/_simulator/stats", handlers.stats)
    return app


class _Handlers:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    # --- shared helpers ---------------------------------------------------------------------------

    def _headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id, **self.state.limiter.headers()}

    def _error(
        self,
        outcome: _Outcome,
        status: int,
        message: str,
        *,
        extra: dict[str, str] | None = None,
        error_type: str | None = None,
    ) -> web.Response:
        body = {
            "type": "error",
            "error": {"type": error_type or _ERROR_TYPE.get(status, "api_error"), "message": message},
            "request_id": outcome.request_id,
        }
        headers = self._headers(outcome.request_id)
        headers["x-should-retry"] = "true" if status in (408, 409, 429) or status >= 500 else "false"
        headers.update(extra or {})
        self._log(outcome, status)
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )

    def _log(self, outcome: _Outcome, status: int) -> None:
        messages = outcome.body.get("messages") if isinstance(outcome.body, dict) else None
        self.state.stats.record(
            RequestRecord(
                request_id=outcome.request_id,
                path=outcome.path,
                status=status,
                fault=outcome.fault,
                body_sha256=outcome.sha,
                messages=len(messages) if isinstance(messages, list) else 0,
                conversation=_conversation_of(messages),
                stream=outcome.stream,
                stop_reason=outcome.stop_reason,
                at=time.time(),
                received_at=outcome.received_at,
                usage=outcome.usage,
            ),
            outcome.body,
        )

    def _authorized(self, request: web.Request) -> bool:
        key = request.headers.get("x-api-key", "").strip()
        if not key:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else ""
        accepted = self.state.settings.api_keys
        return bool(key) and (accepted is None or key in accepted)

    async def _prologue(self, request: web.Request, outcome: _Outcome, raw: bytes) -> web.Response | None:
        if not self._authorized(request):
            return self._error(
                outcome,
                401,
                "x-api-key header is required"
                if not request.headers.get("authorization")
                else "invalid x-api-key",
            )
        try:
            check_headers(request.headers)
        except InvalidRequest as exc:
            return self._error(outcome, exc.status, str(exc), error_type=exc.error_type)
        try:
            outcome.body = json.loads(raw)
        except ValueError:
            return self._error(
                outcome, 400, "There was an error parsing the body of your request: invalid JSON"
            )
        return None

    # --- routes -------------------------------------------------------------------------------------

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.stats.snapshot())

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        outcome = _Outcome(new_request_id(), raw, request.path)
        failure = await self._prologue(request, outcome, raw)
        if failure is not None:
            return failure
        try:
            parsed = parse_request(outcome.body, count_tokens=True)
        except InvalidRequest as exc:
            return self._error(outcome, exc.status, str(exc), error_type=exc.error_type)
        tokens = sum(s.tokens for s in prompt_segments(parsed.body))
        self._log(outcome, 200)
        return web.json_response({"input_tokens": tokens}, headers=self._headers(outcome.request_id))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        raw = await request.read()
        outcome = _Outcome(new_request_id(), raw, request.path)
        failure = await self._prologue(request, outcome, raw)
        if failure is not None:
            return failure
        try:
            parsed = parse_request(outcome.body)
        except InvalidRequest as exc:
            return self._error(outcome, exc.status, str(exc), error_type=exc.error_type)
        outcome.stream = parsed.body.get("stream") is True
        segments = prompt_segments(parsed.body)
        prompt_tokens = sum(s.tokens for s in segments)
        window = context_window(parsed.model, state.settings.context_window)
        if prompt_tokens > window:
            return self._error(outcome, 400, f"prompt is too long: {prompt_tokens} tokens > {window} maximum")
        admission = state.limiter.admit(prompt_tokens)
        if not admission.allowed:
            outcome.fault = "rate_limited"
            return self._error(
                outcome,
                429,
                _rate_limit_message(admission.limit_name),
                extra={"retry-after": str(admission.retry_after)},
            )
        digest = request_digest(parsed.body)
        plan = state.faults.plan(digest, parsed.directives, streaming=outcome.stream)
        outcome.fault = plan.kind or ("slow" if plan.slow else None)
        if plan.kind in _ERROR_STATUS:
            return await self._injected_error(outcome, plan)
        min_tokens = state.settings.cache_min_tokens
        cache = state.cache.account(
            parsed.model,
            segments,
            parsed.body.get("cache_control"),
            min_cacheable_tokens(parsed.model) if min_tokens is None else min_tokens,
        )
        turn = build_turn(
            parsed,
            state.settings,
            prompt_tokens=prompt_tokens,
            cache=cache,
            context_window=window,
            digest=digest,
        )
        state.limiter.settle(turn.output_tokens)
        outcome.stop_reason = turn.stop_reason
        outcome.usage = turn.message()["usage"]
        await self._first_byte_wait(plan)
        if plan.kind == "disconnect" and not outcome.stream:
            self._log(outcome, 0)
            _abort(request)
            return web.Response(status=500)
        if outcome.stream:
            return await self._stream(request, outcome, turn, plan)
        self._log(outcome, 200)
        return web.json_response(turn.message(), headers=self._headers(outcome.request_id))

    # --- pieces of /v1/messages ---------------------------------------------------------------------

    async def _injected_error(self, outcome: _Outcome, plan: FaultPlan) -> web.Response:
        await self._first_byte_wait(plan)
        if plan.kind == "rate_limit":
            return self._error(
                outcome,
                429,
                _rate_limit_message("requests") + " (simulated fault)",
                extra={"retry-after": f"{self.state.settings.retry_after_s:g}"},
            )
        if plan.kind == "invalid_request":
            return self._error(outcome, 400, "messages.0.content.0: simulated invalid request (directive)")
        if plan.kind == "overloaded":
            return self._error(outcome, 529, "Overloaded")
        return self._error(outcome, 500, "Internal server error")

    async def _first_byte_wait(self, plan: FaultPlan) -> None:
        delay = self.state.settings.latency_ms / 1000.0 + (
            self.state.settings.slow_first_byte_s if plan.slow else 0
        )
        if delay > 0:
            await asyncio.sleep(delay)

    async def _stream(
        self, request: web.Request, outcome: _Outcome, turn: Turn, plan: FaultPlan
    ) -> web.StreamResponse:
        settings = self.state.settings
        frames = sse.render(turn)
        cut = _cut_at(plan, len(frames))
        outcome.usage = sse.billed_usage(turn, frames, cut)
        response = web.StreamResponse(
            status=200,
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                **self._headers(outcome.request_id),
            },
        )
        stats = self.state.stats
        stats.stream_opened()
        try:
            await response.prepare(request)
            tps = settings.tokens_per_second
            search_wait = settings.search_latency_ms / 1000.0
            if tps <= 0 and search_wait <= 0:
                await response.write(b"".join(_with_pings(frames[:cut])))
            else:
                for frame in frames[:cut]:
                    if frame.search_wait:
                        await response.write(sse.PING)
                        if search_wait > 0:
                            await asyncio.sleep(search_wait)
                    await response.write(frame.data)
                    if tps > 0 and frame.tokens:
                        await asyncio.sleep(frame.tokens / tps)
            if plan.kind == "disconnect":
                self._log(outcome, 200)
                _abort(request)
                return response
            if plan.kind == "stream_error":
                await response.write(sse.error_frame("overloaded_error", "Overloaded"))
            await response.write_eof()
            self._log(outcome, 200)
        except ConnectionResetError:
            outcome.fault = outcome.fault or "client_closed"
            self._log(outcome, 200)
        except asyncio.CancelledError:
            outcome.fault = outcome.fault or "client_closed"
            self._log(outcome, 200)
            raise
        finally:
            stats.stream_closed()
        return response


_EARLY = 4
"""A stream cut anywhere breaks before ``message_start`` as often as at ``_EARLY + 1`` frames."""


def _cut_at(plan: FaultPlan, frames: int) -> int:
    """How many frames a stream sends: all, or as many as the fault lets through: the middle, or
    where ``plan.cut`` falls (never ``message_stop``; before ``message_start`` now and then)."""
    if plan.kind not in ("stream_error", "disconnect"):
        return frames
    if plan.cut is None:
        return max(2, frames // 2)
    return max(0, min(frames - 1, int(plan.cut * (frames + _EARLY)) - _EARLY))


def _with_pings(frames: list[sse.Frame]) -> list[bytes]:
    out: list[bytes] = []
    for frame in frames:
        if frame.search_wait:
            out.append(sse.PING)
        out.append(frame.data)
    return out


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


def _rate_limit_message(limit_name: str) -> str:
    readable = limit_name.replace("-", " ") or "requests"
    return (
        f"This request would exceed your organization's rate limit of {readable} per minute. For details, "
        "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
        "usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
    )
