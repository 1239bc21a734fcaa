"""The SDK's errors mapped to how an attempt ended: the error mapping of :mod:`core.api.sdk`.

The SDK wraps transport failures differently from one release to the next (from 2.17 a stream the
server drops mid-way reaches us as ``APIConnectionError`` wrapping httpx's ``RemoteProtocolError``;
before, httpx's error came raw), and middleware or our own code may wrap once more. So the chain
of explicit causes (``raise … from …``) is walked and the transport's own word decides: the
innermost httpx exception says in which phase the connection failed. Implicit ``__context__`` is
not followed: an unrelated error raised while handling an API failure (a full disk) must not pass
for one. A transport that is not the SDK's raises :class:`core.api.transport.TransportError`,
which says its ending itself.

What the *attempt* observed (was the request sent, did the response begin, did ``message_start``
arrive) is recorded by :class:`core.api.attempt.AttemptProgress`; :func:`core.api.retry.classify`
and :func:`outcome_of` combine the two. Nothing above this module and
:mod:`core.api.sdk` sees an SDK type: an error status is read into an
:class:`~core.api.transport.ApiStatus` here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import httpx2

from core.api.attempt import AttemptProgress, Outcome
from core.api.transport import ApiStatus, Ending, StreamIncomplete, TransportError

__all__ = ["Ending", "Failure", "StreamIncomplete", "causes", "failure_of", "outcome_of"]


@dataclass(frozen=True, slots=True)
class Failure:
    ending: Ending
    error: BaseException  # the link of the chain that decided (the status error, for STATUS)
    status: ApiStatus | None = None  # what the API's error status said (STATUS only)


# The request never (wholly) left: a connection, pool or write failure, or a request that could not
# be formed or addressed. ConnectTimeout, PoolTimeout and WriteTimeout are timeouts too: they are
# listed here so that this check comes first.
_NOT_SENT: tuple[type[BaseException], ...] = (
    httpx2.ConnectError,
    httpx2.ConnectTimeout,
    httpx2.PoolTimeout,
    httpx2.WriteError,
    httpx2.WriteTimeout,
    httpx2.UnsupportedProtocol,
    httpx2.InvalidURL,
    httpx2.LocalProtocolError,
)


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and its explicit causes, outermost first (cycles cut)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def failure_of(error: BaseException) -> Failure | None:
    """How the attempt that raised ``error`` ended; None when it is not an API or transport failure
    (a bug, a budget stop, a cancellation: those propagate untouched)."""
    chain = list(causes(error))
    for link in chain:
        if isinstance(link, TransportError):
            return Failure(link.ending, link, link.status)
        if isinstance(link, anthropic.APIStatusError):
            return Failure(Ending.STATUS, link, _status(link))
    for link in reversed(chain):  # the innermost transport error knows the phase best
        ending = _transport_ending(link)
        if ending is not None:
            return Failure(ending, link)
    for link in reversed(chain):
        ending = _wrapper_ending(link)
        if ending is not None:
            return Failure(ending, link)
    return None


def _transport_ending(link: BaseException) -> Ending | None:
    if isinstance(link, _NOT_SENT):
        return Ending.NOT_SENT
    if isinstance(link, httpx2.TimeoutException):
        return Ending.TIMED_OUT
    if isinstance(link, httpx2.TransportError | httpx2.DecodingError | StreamIncomplete):
        return Ending.BROKEN
    return None


def _wrapper_ending(link: BaseException) -> Ending | None:
    """Errors that say less than httpx's: the SDK's own, and the socket's."""
    if isinstance(link, anthropic.APITimeoutError | TimeoutError):
        return Ending.TIMED_OUT
    if isinstance(link, ConnectionRefusedError):
        return Ending.NOT_SENT
    if isinstance(link, anthropic.APIConnectionError | ConnectionError):
        return Ending.BROKEN
    if isinstance(link, anthropic.APIError):
        return Ending.OTHER_API
    return None


def _status(error: anthropic.APIStatusError) -> ApiStatus:
    body = error.body
    body_request_id = body.get("request_id") if isinstance(body, dict) else None
    return ApiStatus(
        status_code=error.status_code,
        message=error.api_message or error.message,
        error_type=error.type if isinstance(error.type, str) else None,
        error_code=error.error_code,
        request_id=error.request_id or (body_request_id if isinstance(body_request_id, str) else None),
        headers=error.response.headers,
    )


def outcome_of(error: BaseException, progress: AttemptProgress) -> Outcome:
    """What the API may have done with an attempt that ended with ``error``.

    Nothing is billed for a request that never reached the API (a connection refused, a pool or
    write timeout) or that it answered with an error status (429, 5xx: sent before any work). An
    ``event: error`` before ``message_start`` is the same: the API sends ``message_start`` before it
    samples anything. Once the stream has begun, the server ending it (an error event, a dropped
    connection, a stream cut short) stopped its work; our own stop (a kill, a read timeout) did
    not tell the server anything, so it may have gone on to the end. How the error is wrapped
    does not matter (:func:`failure_of` reads the whole chain).
    """
    if not progress.sent or (progress.batch is not None and progress.batch.deferred):
        return Outcome.NOT_RUN  # (a batch left running: the resume collects and settles its result)
    failure = failure_of(error)
    if failure is None:
        return Outcome.UNKNOWN  # cancelled, or a failure of ours while the request was out
    started = progress.start_usage is not None
    match failure.ending:
        case Ending.STATUS:
            status = failure.status.status_code if failure.status is not None else None
            return Outcome.STOPPED if status == 200 and started else Outcome.NOT_RUN
        case Ending.NOT_SENT:
            return Outcome.NOT_RUN
        case Ending.BROKEN:
            return Outcome.STOPPED if started else Outcome.UNKNOWN
        case Ending.TIMED_OUT | Ending.OTHER_API:
            return Outcome.UNKNOWN
