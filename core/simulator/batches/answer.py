"""One batch request's result: what ``POST /v1/messages`` would answer for its params, as a batch line.

An invalid request is an ``errored`` result carrying the error the synchronous endpoint would have
returned (the batch itself was accepted). A valid one is ``succeeded`` with the message the
synchronous call returns for the same body (web search, citations, ``pause_turn``), except that the
server-side loop runs ``batch_loop_limit`` searches before it pauses, as batches do, and usage says
``service_tier: batch``. Injected faults apply: ``overloaded``, ``server_error`` and
``invalid_request`` make the attempt ``errored``; a batch worker retries rate limits itself and has
no stream to break, so the other kinds do not show.
"""

from __future__ import annotations

from typing import Any

from core.config.simulator import SimulatorSettings
from core.simulator.caching import PromptCache
from core.simulator.errors import InvalidRequest, new_request_id
from core.simulator.faults import INVALID_REQUEST_MESSAGE, FaultInjector
from core.simulator.reply import check_window, compose, prepare

_FAULT_ERRORS = {
    "overloaded": ("overloaded_error", "Overloaded"),
    "server_error": ("api_error", "Internal server error"),
    "invalid_request": ("invalid_request_error", INVALID_REQUEST_MESSAGE),
}


def errored(error_type: str, message: str) -> dict[str, Any]:
    """An ``errored`` result: the API's error response for that one request."""
    error = {"type": error_type, "message": message}
    return {"type": "errored", "error": {"type": "error", "error": error, "request_id": new_request_id()}}


class BatchAnswerer:
    """Answers batch requests with the simulator's shared prompt cache and fault counters."""

    def __init__(self, settings: SimulatorSettings, cache: PromptCache, faults: FaultInjector) -> None:
        self._settings = settings
        self._cache = cache
        self._faults = faults

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("stream") is True:
            return errored("invalid_request_error", "stream: batch requests cannot be streamed")
        settings = self._settings
        try:
            prepared = prepare(params, settings)
            check_window(prepared)
        except InvalidRequest as exc:
            return errored(exc.error_type, str(exc))
        plan = self._faults.plan(prepared.digest, prepared.parsed.directives, streaming=False)
        if plan.kind in _FAULT_ERRORS:
            return errored(*_FAULT_ERRORS[plan.kind])
        batch_loop = settings.model_copy(update={"server_loop_limit": settings.batch_loop_limit})
        message = compose(prepared, batch_loop, self._cache).message()
        message["usage"]["service_tier"] = "batch"
        return {"type": "succeeded", "message": message}
