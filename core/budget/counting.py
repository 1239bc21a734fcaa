"""How often the free ``count_tokens`` endpoint is asked: never faster than its own rate limit.

The endpoint is free but has requests-per-minute limits of its own, apart from those of Messages
(``docs/reference/anthropic-api.md``, section 5.4); the lowest usage tier allows 100 a minute. A
count only tightens a bound that is already safe (the bytes of what is sent, or the previous
call's usage plus what was added since), so a count the gate refuses is simply not asked and the
call keeps its looser bound: nothing waits on it. After a failed count (a 429 among the causes)
counting pauses for a minute.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from weakref import WeakKeyDictionary

COUNTS_PER_MINUTE = 50
"""Half the lowest tier's limit (100 a minute): room for other clients of the same API key."""
PAUSE_AFTER_FAILURE_S = 60.0
WINDOW_S = 60.0


class CountGate:
    """A rolling-minute budget of ``count_tokens`` requests for one API client (one run's)."""

    def __init__(
        self, per_minute: int = COUNTS_PER_MINUTE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sent: deque[float] = deque()
        self._paused_until = 0.0

    def take(self) -> bool:
        """Whether a count may be sent now (and count it as sent)."""
        now = self._clock()
        if now < self._paused_until:
            return False
        while self._sent and now - self._sent[0] >= WINDOW_S:
            self._sent.popleft()
        if len(self._sent) >= self.per_minute:
            return False
        self._sent.append(now)
        return True

    def failed(self) -> None:
        """A count failed: ask none for a while (the endpoint may be limiting us)."""
        self._paused_until = self._clock() + PAUSE_AFTER_FAILURE_S


_GATES: WeakKeyDictionary[object, CountGate] = WeakKeyDictionary()


def gate_for(counter: object) -> CountGate:
    """The gate of ``counter`` (a transport: one per run, shared by its agents)."""
    gate = _GATES.get(counter)
    if gate is None:
        gate = _GATES[counter] = CountGate()
    return gate
