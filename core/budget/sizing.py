"""Requests shrink to fit: the largest ``max_tokens`` and ``max_uses`` whose worst case a cap allows.

Why: the ledger reserves a call's worst case (every output token of ``max_tokens``, every search
of ``max_uses``) and, for research, its agent's report at the same size. Near a binding cap those
worst cases no longer fit while real calls still would, so agents used to stop with much of the
cap unspent (issue 21: a $0.50 cap stopped at $0.25). Instead a call is sent smaller: its worst
case, computed from the request as actually sent, still fits, so the caps hold exactly as before.

The order gives up what matters least first:

1. searches, from the request's ``max_uses`` down to one, at full ``max_tokens`` and a
   full-size report hold;
2. the call's ``max_tokens``, down to :data:`RESEARCH_OUTPUT_FLOOR`, at one search;
3. the report hold's ``max_tokens``, down to :data:`REPORT_OUTPUT_FLOOR`, with the call at its
   floors: the agent still researches, and writes a shorter report;
4. the prompt cache, when the caller may send the request without breakpoints
   (``Bounds.uncached``): steps 1-3 again, priced at the plain input price. A request with no
   ``cache_control`` neither writes nor reads the cache (``docs/reference/anthropic-api.md``
   5.2: caching is asked for by markers), so its prompt's worst case is 1.0x the input price
   instead of the 1.25x (2x) of a cache write; what it gives up is the cheaper reads of a
   prefix, which the worst case could never count on;
5. the search itself, when the request's floor is none (``min_searches`` 0: a research turn's last
   resort, :func:`core.engine.request.call_request` says when): steps 2-4 with no search.

Below the floors the call is refused (:class:`core.budget.ledger.BudgetExhausted`) and the agent
writes its report from the hold it already has. A report call is sized the same way, between
:data:`REPORT_OUTPUT_FLOOR` and ``max_tokens``, cached then (if allowed) not: it fits if its hold
covers it or the caps do.

Every step's cost is monotone in the size, so each is a binary search over a predicate the caller
provides (the ledger's cap check): a few cap checks, and only when the full size does not fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

RESEARCH_OUTPUT_FLOOR = 512
"""Output tokens a research turn keeps at least: a paragraph of findings with its citations
(the simulator's answers and real ones run 300-1,500 tokens); a call cut there continues."""
REPORT_OUTPUT_FLOOR = 1_024
"""Output tokens a report keeps at least: a summary, key findings with citations and open
questions in brief (the report lists its sources itself, outside the model's output)."""


@dataclass(frozen=True, slots=True)
class Size:
    """What a call is sent with: its ``max_tokens``, ``max_uses``, and its report hold's
    ``max_tokens`` (for a research call; a report call has no hold)."""

    max_tokens: int
    searches: int
    report_tokens: int
    cached: bool = True  # sent with its cache breakpoints (else none: priced at the plain input price)


@dataclass(frozen=True, slots=True)
class Bounds:
    """How far a request may shrink: from its asked size down to its floors."""

    max_tokens: int
    min_tokens: int
    max_searches: int
    min_searches: int
    report_tokens: int
    min_report_tokens: int
    uncached: bool = False  # the request may be sent without cache breakpoints when that fits

    @property
    def caching(self) -> tuple[bool, ...]:
        """The ``Size.cached`` values to try, in order: with the cache, then (if allowed) without."""
        return (True, False) if self.uncached else (True,)

    @classmethod
    def of(
        cls,
        *,
        max_tokens: int,
        max_searches: int,
        min_searches: int | None,
        min_tokens: int | None,
        report_tokens: int | None,
        min_report_tokens: int | None,
        uncached: bool = False,
    ) -> Bounds:
        """Floors never above what was asked (a request asking less than a floor is not shrunk);
        ``None`` floors: that part does not shrink."""
        searches = max(0, max_searches)
        report = max_tokens if report_tokens is None else report_tokens
        return cls(
            max_tokens=max_tokens,
            min_tokens=max_tokens if min_tokens is None else max(1, min(min_tokens, max_tokens)),
            max_searches=searches,
            min_searches=searches if min_searches is None else max(0, min(min_searches, searches)),
            report_tokens=report,
            min_report_tokens=report if min_report_tokens is None else max(1, min(min_report_tokens, report)),
            uncached=uncached,
        )


P = TypeVar("P")


def largest(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """The largest ``n`` in ``[low, high]`` with ``fits(n)``, for ``fits`` true up to some size and
    false above it; ``None`` when even ``low`` does not fit. The full size is tried first: it
    usually fits, in one check."""
    if high < low:
        return None
    if fits(high):
        return high
    high -= 1
    if high < low or not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def research_size(bounds: Bounds, problem: Callable[[Size], P | None]) -> tuple[Size, P | None]:
    """The largest research call that fits (see the module docstring for the order), or the
    smallest with the problem it meets. ``problem(size)`` is ``None`` when ``size`` fits."""
    b = bounds
    one = max(b.min_searches, min(1, b.max_searches))  # a search while one fits
    for floor, top in dict.fromkeys(((one, b.max_searches), (b.min_searches, b.min_searches))):
        for cached in b.caching:
            size = _research_at(b, floor, top, cached, problem)
            if size is not None:
                return size, None
    smallest = Size(b.min_tokens, b.min_searches, b.min_report_tokens, b.caching[-1])
    return smallest, problem(smallest)


def _research_at(
    b: Bounds, floor: int, top: int, cached: bool, problem: Callable[[Size], object | None]
) -> Size | None:
    """Steps 1-3 of the order at ``floor`` searches (from ``top``), with or without the cache."""
    for searches in range(top, floor - 1, -1):
        size = Size(b.max_tokens, searches, b.report_tokens, cached)
        if problem(size) is None:
            return size
    tokens = largest(
        lambda m: problem(Size(m, floor, b.report_tokens, cached)) is None, b.min_tokens, b.max_tokens - 1
    )
    if tokens is not None:
        return Size(tokens, floor, b.report_tokens, cached)
    report = largest(
        lambda m: problem(Size(b.min_tokens, floor, m, cached)) is None,
        b.min_report_tokens,
        b.report_tokens - 1,
    )
    if report is not None:
        return Size(b.min_tokens, floor, report, cached)
    return None


def report_size(bounds: Bounds, problem: Callable[[Size], P | None]) -> tuple[Size, P | None]:
    """The largest report call that fits, down to its floor, with the cache and then (if allowed)
    without; else the floor with its problem."""
    b = bounds
    for cached in b.caching:

        def fits(m: int, cached: bool = cached) -> bool:
            return problem(Size(m, 0, 0, cached)) is None

        tokens = largest(fits, b.min_tokens, b.max_tokens)
        if tokens is not None:
            return Size(tokens, 0, 0, cached), None
    smallest = Size(b.min_tokens, 0, 0, b.caching[-1])
    return smallest, problem(smallest)
