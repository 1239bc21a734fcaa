"""Running figures the ledger reads several times a call: kept up to date as entries come and go,
so reading them costs the same with 1,000 agents as with one (adding up every call in flight, or
every settled call of the burn window, on each read grew the CPU of a call with the agents)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class RunningSums:
    """Dollars, tokens and searches of a set of entries (calls in flight, report holds). Exact
    zeros once the set is empty again, so a float's rounding never leaves a phantom reservation."""

    usd: float = 0.0
    tokens: int = 0
    searches: int = 0
    entries: int = 0

    def add(self, usd: float, tokens: int, searches: int = 0) -> None:
        self.usd += usd
        self.tokens += tokens
        self.searches += searches
        self.entries += 1

    def remove(self, usd: float, tokens: int, searches: int = 0) -> None:
        self.entries -= 1
        if self.entries <= 0:
            self.usd, self.tokens, self.searches, self.entries = 0.0, 0, 0, 0
            return
        self.usd = max(0.0, self.usd - usd)
        self.tokens -= tokens
        self.searches -= searches


class BurnWindow:
    """The dollars of the calls settled since a moment that only moves forward (the start of the
    burn-rate window): entries older than it are dropped as it moves, their dollars taken out."""

    def __init__(self) -> None:
        self._entries: deque[tuple[float, float]] = deque()
        self._usd = 0.0

    def add(self, at: float, usd: float) -> None:
        self._entries.append((at, usd))
        self._usd += usd

    def since(self, start: float) -> float:
        """Dollars of the entries at or after ``start`` (entries come in time order)."""
        entries = self._entries
        while entries and entries[0][0] < start:
            self._usd -= entries.popleft()[1]
        if not entries:
            self._usd = 0.0
        return max(0.0, self._usd)
