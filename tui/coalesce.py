"""Rate limits for repaints: many updates in, at most one flush per interval out.

A stream of 20 agents at 200 tokens a second is ~4,000 updates a second; repainting per update, or
running one timer per widget, starves the event loop. :class:`Throttle` runs an action at most once
per interval (a one-shot timer armed by the first poke, so an idle screen costs nothing), and
:class:`Coalescer` flushes every widget marked dirty since the last flush in one
``App.batch_update()``, so they reach the screen in a single frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from textual.message_pump import MessagePump


class Throttle:
    """Calls ``action`` soon after a :meth:`poke`, but never twice within ``interval`` seconds."""

    def __init__(self, owner: MessagePump, interval: float, action: Callable[[], object]) -> None:
        self.owner = owner
        self.interval = interval
        self.action = action
        self._armed = False
        self._last = 0.0

    @property
    def armed(self) -> bool:
        return self._armed

    def poke(self) -> None:
        if self._armed:
            return
        self._armed = True
        wait = max(0.005, self.interval - (time.monotonic() - self._last))
        self.owner.set_timer(wait, self.fire)

    def fire(self) -> None:
        """Run the action now (the armed timer, if any, then finds nothing to do)."""
        self._armed = False
        self._last = time.monotonic()
        self.action()


class Flushable(Protocol):
    def flush(self) -> None: ...


class Coalescer:
    """Widgets mark themselves dirty; one timer flushes them all in a single batch."""

    def __init__(self, owner: MessagePump, interval: float) -> None:
        self.owner = owner
        self._dirty: dict[Flushable, None] = {}  # insertion-ordered set
        self._throttle = Throttle(owner, interval, self.flush)
        self.flushes = 0

    @property
    def armed(self) -> bool:
        """A flush is due (something is waiting to reach the screen)."""
        return self._throttle.armed

    def mark(self, item: Flushable) -> None:
        self._dirty[item] = None
        self._throttle.poke()

    def discard(self, item: Flushable) -> None:
        self._dirty.pop(item, None)

    def flush(self) -> None:
        if not self._dirty:
            return
        items = list(self._dirty)
        self._dirty.clear()
        self.flushes += 1
        with self.owner.app.batch_update():
            for item in items:
                item.flush()
