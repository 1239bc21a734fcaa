"""A transport that replays recorded exchanges: the turn loop without HTTP.

Each request takes the next :class:`Exchange` in order: its events are yielded one by one (each
after a turn of the event loop, as a network read would give one), then its error, if any, is
raised, or, for an exchange that ``holds``, the call waits until it is cancelled (a call in
flight when the agent is killed). What was sent is kept in :attr:`ReplayTransport.requests`.

The tests record their sequences from real exchanges (the SDK transport reading recorded HTTP
responses, see ``tests/core/api/recorded.py``); the replay itself knows no SDK.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.api.transport import CallResult, Completed, StreamEvent


@dataclass(frozen=True, slots=True)
class Exchange:
    """One recorded attempt: what it yielded, then how it ended if not with ``Completed``."""

    events: tuple[StreamEvent, ...] = ()
    error: BaseException | None = None  # raised after the events
    holds: bool = False  # after the events, the call hangs until cancelled


class ReplayTransport:
    """A :class:`~core.api.transport.Transport` answering from :class:`Exchange` s, in order."""

    def __init__(self, exchanges: Iterable[Exchange] = (), *, token_count: int | None = None) -> None:
        self._exchanges = deque(exchanges)
        self._token_count = token_count  # count_tokens' answer; None: it fails (the byte bound stands)
        self.requests: list[Mapping[str, Any]] = []
        self.holding = asyncio.Event()  # set while a call is held in flight
        self.closed = False

    def add(self, *exchanges: Exchange) -> None:
        self._exchanges.extend(exchanges)

    @property
    def pending(self) -> int:
        """Exchanges not yet replayed."""
        return len(self._exchanges)

    def _next(self, request: Mapping[str, Any]) -> Exchange:
        self.requests.append(request)
        if not self._exchanges:
            raise AssertionError(f"no recorded exchange left for request {len(self.requests)}")
        return self._exchanges.popleft()

    async def stream(self, request: Mapping[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        exchange = self._next(request)
        for event in exchange.events:
            await asyncio.sleep(0)
            yield event
        await self._end(exchange)

    async def create(self, request: Mapping[str, Any]) -> CallResult:
        exchange = self._next(request)
        for event in exchange.events:
            if isinstance(event, Completed):
                return event.result
        await self._end(exchange)
        raise AssertionError("an unstreamed exchange needs a Completed event or an error")

    async def _end(self, exchange: Exchange) -> None:
        if exchange.error is not None:
            raise exchange.error
        if exchange.holds:
            self.holding.set()
            try:
                await asyncio.Event().wait()  # until cancelled
            finally:
                self.holding.clear()

    async def count_tokens(self, request: Mapping[str, Any]) -> int:
        if self._token_count is None:
            raise RuntimeError("the replay has no token count")
        return self._token_count

    async def close(self) -> None:
        self.closed = True
