"""The HTTP surface: ``POST /v1/messages`` (streamed or not), ``POST /v1/messages/count_tokens`` and
``GET /_simulator/stats``, on aiohttp; the Message Batches endpoints are ``batches.routes``.

One ``SimulatorState`` holds what requests share (cache, rate limiter, fault counters, stats). A
request goes: auth, JSON, validation (paused-turn integrity included), context window, rate limit, injected
faults, cache accounting, the turn, then the response (paced) with the request's headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from core.config.simulator import SimulatorSettings
from core.simulator import sse
from core.simulator.batches.answer import BatchAnswerer
from core.simulator.batches.store import BatchStore
from core.simulator.body import parse_body
from core.simulator.caching import PromptCache
from core.simulator.errors import new_request_id
from core.simulator.faults import INVALID_REQUEST_MESSAGE, FaultInjector, FaultPlan
from core.simulator.outcome import Outcome
from core.simulator.ratelimit import RateLimiter
from core.simulator.reply import check_window, compose, prepare
from core.simulator.responder import Turn
from core.simulator.stats import RequestRecord, SimulatorStats
from core.simulator.threads import ThreadRejected, ThreadStore, ThreadTurn
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
        self.threads = ThreadStore(clock, settings.thread_expiry_s)
        self.batches = BatchStore(settings, clock, BatchAnswerer(settings, self.cache, self.faults))


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
    from core.simulator.batches.routes import BatchRoutes  # it builds on this module's handlers

    BatchRoutes(handlers, state.batches).add_to(app)

    async def batches_running(_app: web.Application) -> AsyncIterator[None]:
        yield
        await state.batches.close()  # at the server's cleanup

    app.cleanup_ctx.append(batches_running)
    return app


class _Handlers:
    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    # --- shared helpers ---------------------------------------------------------------------------

    def headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id, **self.state.limiter.headers()}

    def error(
        self,
        outcome: Outcome,
        status: int,
        message: str,
        *,
        extra: dict[str, str] | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
    ) -> web.Response:
        error: dict[str, Any] = {
            "type": error_type or _ERROR_TYPE.get(status, "api_error"),
            "message": message,
        }
        if error_code is not None:
            error["details"] = {"error_code": error_code}
        body = {"type": "error", "error": error, "request_id": outcome.request_id}
        headers = self.headers(outcome.request_id)
        headers["x-should-retry"] = "true" if status in (408, 409, 429) or status >= 500 else "false"
        headers.update(extra or {})
        self.log(outcome, status)
        return web.Response(
            status=status, text=json.dumps(body), content_type="application/json", headers=headers
        )

    def log(self, outcome: Outcome, status: int) -> None:
        body = outcome.whole if outcome.whole is not None else outcome.body  # a thread's: rebuilt whole
        messages = body.get("messages") if isinstance(body, dict) else None
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
                bytes=outcome.bytes,
                thread=outcome.thread,
                validated_tokens=outcome.validated_tokens,
                first_byte_s=outcome.first_byte_s,
                prompt_tokens=outcome.prompt_tokens,
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

    async def prologue(self, request: web.Request, outcome: Outcome, raw: bytes) -> web.Response | None:
        """Auth, headers and the JSON body (into ``outcome.body``); the error response, or None."""
        failure = self.admit(request, outcome)
        if failure is not None:
            return failure
        try:
            outcome.body = parse_body(raw)
        except InvalidRequest as exc:
            return self.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        return None

    def admit(self, request: web.Request, outcome: Outcome) -> web.Response | None:
        """Auth and headers, for any route (one without a body too); the error response, or None."""
        if not self._authorized(request):
            return self.error(
                outcome,
                401,
                "x-api-key header is required"
                if not request.headers.get("authorization")
                else "invalid x-api-key",
            )
        try:
            check_headers(request.headers)
        except InvalidRequest as exc:
            return self.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        return None

    # --- routes -------------------------------------------------------------------------------------

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.stats.snapshot())

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        outcome = Outcome(new_request_id(), raw, request.path)
        failure = await self.prologue(request, outcome, raw)
        if failure is not None:
            return failure
        try:
            parsed = parse_request(outcome.body, count_tokens=True)
        except InvalidRequest as exc:
            return self.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        tokens = sum(s.tokens for s in prompt_segments(parsed.body))
        self.log(outcome, 200)
        return web.json_response({"input_tokens": tokens}, headers=self.headers(outcome.request_id))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        outcome = Outcome(new_request_id(), raw, request.path)
        failure = await self.prologue(request, outcome, raw)
        if failure is not None:
            return failure
        asked = outcome.body.get("thread") if isinstance(outcome.body, dict) else None
        if isinstance(asked, dict) and asked.get("type") in ("create", "continue"):
            outcome.thread = str(asked["type"])
        try:
            thread = (
                self.state.threads.begin(outcome.body, request.headers)
                if isinstance(outcome.body, dict)
                else None
            )
        except ThreadRejected as exc:
            return self.error(
                outcome, exc.status, str(exc), error_type=exc.error_type, error_code=exc.error_code
            )
        except InvalidRequest as exc:
            return self.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        if thread is None:
            return await self._messages(request, outcome, outcome.body, None)
        outcome.whole = thread.body
        try:
            return await self._messages(request, outcome, thread.body, thread)
        finally:
            self.state.threads.abandon(thread)  # a reply not stored whole frees what it continued

    async def _messages(
        self, request: web.Request, outcome: Outcome, body: Any, thread: ThreadTurn | None
    ) -> web.StreamResponse:
        state = self.state
        try:
            prepared = prepare(body, state.settings)
        except InvalidRequest as exc:
            return self.error(outcome, exc.status, str(exc), error_type=exc.error_type)
        parsed = prepared.parsed
        outcome.stream = parsed.body.get("stream") is True
        outcome.prompt_tokens = prepared.prompt_tokens
        outcome.validated_tokens = (
            prepared.prompt_tokens
            if thread is None or thread.kind == "create"
            else _sent_tokens(thread.sent_tokens_body)
        )
        try:
            check_window(prepared)
        except InvalidRequest as exc:
            return self.error(outcome, exc.status, str(exc))
        admission = state.limiter.admit(prepared.prompt_tokens)
        if not admission.allowed:
            outcome.fault = "rate_limited"
            return self.error(
                outcome,
                429,
                _rate_limit_message(admission.limit_name),
                extra={"retry-after": str(admission.retry_after)},
            )
        plan = state.faults.plan(prepared.digest, parsed.directives, streaming=outcome.stream)
        outcome.fault = plan.kind or ("slow" if plan.slow else None)
        if plan.kind in _ERROR_STATUS:
            return await self._injected_error(outcome, plan)

        turn = compose(prepared, state.settings, state.cache)
        state.limiter.settle(turn.output_tokens)
        outcome.stop_reason = turn.stop_reason
        outcome.usage = turn.message()["usage"]
        await self._first_byte_wait(plan, outcome)
        if plan.kind == "disconnect" and not outcome.stream:
            self.log(outcome, 0)
            _abort(request)
            return web.Response(status=500)
        if outcome.stream:
            return await self._stream(request, outcome, turn, plan, thread)
        if thread is not None:
            state.threads.finish(thread, turn.message_id, [b.final for b in turn.blocks])
        self.log(outcome, 200)
        return web.json_response(turn.message(), headers=self.headers(outcome.request_id))

    # --- pieces of /v1/messages ---------------------------------------------------------------------

    async def _injected_error(self, outcome: Outcome, plan: FaultPlan) -> web.Response:
        await self._first_byte_wait(plan, outcome)
        if plan.kind == "rate_limit":
            return self.error(
                outcome,
                429,
                _rate_limit_message("requests") + " (simulated fault)",
                extra={"retry-after": f"{self.state.settings.retry_after_s:g}"},
            )
        if plan.kind == "invalid_request":
            return self.error(outcome, 400, INVALID_REQUEST_MESSAGE)
        if plan.kind == "overloaded":
            return self.error(outcome, 529, "Overloaded")
        return self.error(outcome, 500, "Internal server error")

    async def _first_byte_wait(self, plan: FaultPlan, outcome: Outcome) -> None:
        """The API's wait before a first byte: its latency, the time it takes to validate and tokenize
        what the request carried (a thread continue carries only its new turn), a ``slow`` fault."""
        settings = self.state.settings
        delay = (
            settings.latency_ms / 1000.0
            + outcome.validated_tokens / 1000.0 * settings.validation_ms_per_1k_tokens / 1000.0
            + (settings.slow_first_byte_s if plan.slow else 0)
        )
        outcome.first_byte_s = delay
        if delay > 0:
            await asyncio.sleep(delay)

    async def _stream(
        self, request: web.Request, outcome: Outcome, turn: Turn, plan: FaultPlan, thread: ThreadTurn | None
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
                **self.headers(outcome.request_id),
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
                self.log(outcome, 200)
                _abort(request)
                return response
            if plan.kind == "stream_error":
                await response.write(sse.error_frame("overloaded_error", "Overloaded"))
            elif thread is not None:  # held once the whole reply went out
                self.state.threads.finish(thread, turn.message_id, [b.final for b in turn.blocks])
            await response.write_eof()
            self.log(outcome, 200)
        except ConnectionResetError:
            outcome.fault = outcome.fault or "client_closed"
            self.log(outcome, 200)
        except asyncio.CancelledError:
            outcome.fault = outcome.fault or "client_closed"
            self.log(outcome, 200)
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


def _sent_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of what a request itself carried (a continue: its new messages only)."""
    return sum(s.tokens for s in prompt_segments(body))


def _rate_limit_message(limit_name: str) -> str:
    readable = limit_name.replace("-", " ") or "requests"
    return (
        f"This request would exceed your organization's rate limit of {readable} per minute. For details, "
        "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
        "usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
    )
