"""The budget ledger: reserve a call's worst case before it is made, settle to its usage after.

Why reservations: several agents are in flight at once, so checking the spend only after calls
finish lets each of them overshoot. Here a call is made only if ``spent + reserved + its worst
case`` fits every cap, and the check and the record happen in one synchronous step on the one
event loop, so no interleaving of agents can cross a cap.

Why the worst case holds. One call with web search runs a server-side loop: up to ``s`` searches
(the request's ``max_uses``, which the caller must send), each followed by another sampling
iteration that re-reads the whole prompt so far, and the API bills the input of every iteration.
With ``P`` a bound of the prompt's tokens, ``M`` = ``max_tokens`` and ``R`` the tokens one
search's results may add (``search_input_tokens``), the billed input is at most
``(s + 1)·P + s·M + R·s(s + 1)/2``, priced at the dearest rate the request can be billed at (a
cache write at its TTL's multiplier when caching is on); the output is at most ``M``; the
searches at most ``s``. ``R`` defaults to 10,000: a real recorded search
(``tests/fixtures/anthropic-recorded/web-search-non-streaming.json``) billed 11,306 input tokens for a
one-line question. ``P`` is the caller's *bound* (UTF-8 bytes of what is sent, or the previous
call's billed usage plus what was added since): never an average.

Reports are always affordable. A research call also holds, for its agent, the worst case of the
report call that could follow it (the history after this call, grown by ``M`` and ``s·R``, sent
with no searches). The hold counts against every cap like a reservation; the agent's report call
converts it, so a report never waits on, or is refused by, a cap once research has started.

Requests shrink to fit. When the asked size does not fit, the call is granted the largest that
does (:mod:`core.budget.sizing`): fewer searches, then a lower ``max_tokens``, then a shorter
report held, down to the request's floors, then (when the caller allows it) the same without
cache breakpoints, whose input is then priced at the plain input price, not the cache write's;
the granted :class:`Reservation` is the worst case of the request as it must then be sent. A
research call is sized against what is spent and held for reports, and waits for the room other
agents' calls in flight will free rather than shrink for it.

Reservations wait. :meth:`BudgetLedger.acquire` queues a call that does not fit *now* but would
fit once other agents' calls in flight settle; waiters are served first come, first served. A
call that cannot fit even with nothing else in flight (or when nothing else is in flight or
about to be) is refused with :class:`BudgetExhausted`, which says which cap bound and whether
spending or reservations were the reason.

Reserve for later layers: an agent of layer ``l`` of ``n`` may only fill each run cap up to
``cap × (1 − reserve × (n − l)/(n − 1))``, so the synthesis can always be written.

Two kinds of money. What the API reported (a settled call, a failed attempt whose ``message_delta``
arrived) is *billed*: exact. What was charged for an attempt whose usage never arrived (a cut
stream, a kill, a stop, a timeout, a call in flight when the process died) is *unconfirmed*: a
bound, counted with how many such attempts. Caps count both (``spent`` = billed + unconfirmed);
users reconcile the billed part with their bill.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from core.api.attempt import AttemptProgress, Outcome
from core.budget.charges import AttemptLimits, Charge, InputField, attempt_charge
from core.budget.pricing import PriceTable
from core.budget.running import BurnWindow, RunningSums
from core.budget.sizing import Bounds, Size, report_size, research_size
from core.budget.stops import Spend, Stop, stop_message
from core.config.model import BudgetSettings
from core.errors import ResearchOrchestratorError
from core.prices import SEARCH_INPUT_TOKENS
from core.usage import ALL_BILLED, TokenUsage, Unconfirmed

if TYPE_CHECKING:
    from core.events import BudgetUpdated

BURN_WINDOW_S = 300.0
"""The burn rate is the spend of the settled calls of the last five minutes."""
MIN_BURN_SPAN_S = 30.0
"""Floor of the burn-rate denominator, so the first settled call does not read as a spike."""
RECORDS_KEPT = 100_000
"""Usage records kept in memory (about one per API call; persisted state holds totals only)."""
STATE_VERSION = 1

CacheWrite = Literal["none", "5m", "1h"]
"""How a request's input may be written to the cache: its TTL, or not at all (caching off)."""
REPORT_CACHE_WRITE: CacheWrite = "none"
"""A report call writes nothing to the cache (``core/engine/request.py`` sends it without
breakpoints): it is its conversation's last call, so a write (1.25x or 2x of its whole prompt) is
never read, and its prompt reads nothing either, since it asks for no search and its tools differ
from the research calls'. Its hold is priced the same way, at the plain input price."""
Reason = Literal["spent", "reserved"]


class BudgetExhausted(ResearchOrchestratorError):
    """A call's worst case does not fit a cap: the call must not be made.

    ``reason`` is ``"spent"`` when the call cannot fit even with nothing else reserved, and
    ``"reserved"`` when it is other agents' reservations (calls in flight, reports held) that
    leave no room for it. ``needed`` and ``left`` (in the cap's unit: dollars, searches or tokens)
    are the call's worst case with its report held, and what the cap had left for it.
    """

    def __init__(
        self,
        cap: str,
        message: str,
        reason: Reason = "spent",
        *,
        needed: float | None = None,
        left: float | None = None,
    ) -> None:
        self.cap = cap  # "usd", "searches", "tokens", "agent_usd", "agent_searches"
        self.message = message
        self.reason = reason
        self.needed = needed
        self.left = left
        super().__init__(message)

    def stop(self) -> Stop:
        return Stop(self.cap, self.reason, self.needed, self.left)


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The most one call can be billed, from the bounds the request itself sets."""

    input_tokens: int
    output_tokens: int
    searches: int
    usd: float
    cache_write: CacheWrite = "none"  # how its input was priced: a cache write, or plain input

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


NOTHING = WorstCase(0, 0, 0, 0.0)


def dearest_input(prices: PriceTable, model: str, cache_write: CacheWrite) -> InputField:
    """How an input token of a request can be billed at its dearest (a cache write, when caching)."""
    rates = prices.price(model)
    options: list[tuple[float, InputField]] = [(rates.input, "input_tokens")]
    if cache_write == "5m":
        options.append((rates.cache_write_5m, "cache_write_5m_tokens"))
    elif cache_write == "1h":
        options.append((rates.cache_write_1h, "cache_write_1h_tokens"))
    return max(options)[1]


def worst_usage(
    prices: PriceTable,
    model: str,
    *,
    input_tokens: int,
    max_tokens: int,
    max_searches: int,
    search_input_tokens: int = SEARCH_INPUT_TOKENS,
    cache_write: CacheWrite = "1h",
) -> TokenUsage:
    """The most one call can be billed, as usage (see the module docstring for the formula)."""
    s = max(0, max_searches)
    billed_input = (s + 1) * input_tokens + s * max_tokens + search_input_tokens * s * (s + 1) // 2
    field = dearest_input(prices, model, cache_write)
    return TokenUsage(output_tokens=max_tokens, web_search_requests=s) + TokenUsage(**{field: billed_input})


def worst_case(
    prices: PriceTable,
    model: str,
    *,
    input_tokens: int,
    max_tokens: int,
    max_searches: int,
    search_input_tokens: int = SEARCH_INPUT_TOKENS,
    cache_write: CacheWrite = "1h",
) -> WorstCase:
    """Upper bound of one call's usage and dollars (see the module docstring for the formula)."""
    usage = worst_usage(
        prices,
        model,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        max_searches=max_searches,
        search_input_tokens=search_input_tokens,
        cache_write=cache_write,
    )
    return WorstCase(
        input_tokens=usage.total_input_tokens,
        output_tokens=max_tokens,
        searches=usage.web_search_requests,
        usd=prices.cost(model, usage),
        cache_write=cache_write,
    )


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What a caller asks the ledger to hold for one call.

    ``report_input_tokens`` (a research call) is a bound of the input of the report call that
    could follow this one, before this call's growth; the ledger then holds that report's worst
    case for the agent, its input grown by ``report_growth[s]`` more when the call is granted ``s``
    searches (what they may add to the report's prompt; the last entry for more, none if empty).
    ``None`` keeps the agent's current hold. ``report`` marks the report call
    itself, which converts the hold. The ``min_*`` floors let the ledger shrink the call to fit
    (:mod:`core.budget.sizing`); the granted :class:`Reservation` says what to send.
    ``cache_optional``: the caller can send the request without its cache breakpoints, so a call
    that does not fit with them may be granted without (``Reservation.cache_write`` ``"none"``),
    priced at the plain input price; its report hold likewise.
    """

    agent_id: str
    layer: int
    model: str
    input_tokens: int
    max_tokens: int
    max_searches: int
    min_searches: int | None = None
    agent_search_cap: int | None = None
    purpose: str = "turn"
    cache_write: CacheWrite = "1h"
    report_input_tokens: int | None = None
    report_growth: tuple[int, ...] = ()
    report: bool = False
    min_max_tokens: int | None = None  # the call may be sent with max_tokens down to this
    report_max_tokens: int | None = None  # the report hold's max_tokens (default: max_tokens)
    min_report_tokens: int | None = None  # ... down to this
    cache_optional: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    """Budget held for one call in flight; settle it with the call's usage, or release it."""

    id: int
    agent_id: str
    layer: int
    model: str
    purpose: str
    input_tokens: int
    max_tokens: int  # the request's max_tokens must not exceed this (it may have been shrunk)
    max_searches: int  # the request's max_uses must not exceed this (it may have been shrunk)
    usd: float
    tokens: int
    cache_write: CacheWrite = "1h"  # "none" when granted without the cache: send no breakpoint


@dataclass(frozen=True, slots=True)
class UsageRecord:
    agent_id: str
    layer: int
    model: str
    usage: TokenUsage
    cost_usd: float
    at: float  # the ledger's clock


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    spent_usd: float  # billed + unconfirmed: what the caps count
    unconfirmed_usd: float  # bounds charged for attempts whose usage never arrived
    unconfirmed_attempts: int
    unconfirmed_searches: int
    reserved_usd: float  # calls in flight and reports held
    cap_usd: float | None
    remaining_usd: float | None  # what may still be reserved: cap − spent − reserved
    searches: int
    reserved_searches: int
    search_cap: int | None
    tokens: int
    reserved_tokens: int
    token_cap: int | None
    usage: TokenUsage
    burn_usd_per_min: float
    seconds_to_cap: float | None  # at the current burn rate; None without a cap or a burn

    @property
    def billed_usd(self) -> float:
        return self.spent_usd - self.unconfirmed_usd

    @property
    def billed_searches(self) -> int:
        return self.searches - self.unconfirmed_searches


@dataclass(slots=True)
class _Totals:
    layer: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0  # billed + unconfirmed
    calls: int = 0
    closed: int = 0  # reservations settled, charged or released: what a write-ahead entry is matched by
    unconfirmed_usd: float = 0.0
    unconfirmed_attempts: int = 0
    unconfirmed_searches: int = 0
    # The totals as :meth:`BudgetLedger.to_state` writes them, made again only after they change
    # (every checkpoint holds every agent's: remade each time, that was quadratic in agents).
    saved: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def state(self) -> dict[str, Any]:
        if self.saved is None:
            self.saved = {
                "layer": self.layer,
                "usage": self.usage.to_dict(),
                "cost_usd": self.cost_usd,
                "calls": self.calls,
                "closed": self.closed,
                **_unconfirmed_state(self),
            }
        return self.saved


@dataclass(slots=True)
class _Waiter:
    request: CallRequest
    future: asyncio.Future[Reservation]


class BudgetLedger:
    """Spend, reservations and caps of one run. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        settings: BudgetSettings,
        prices: PriceTable,
        *,
        n_layers: int,
        clock: Callable[[], float] = time.monotonic,
        search_input_tokens: int = SEARCH_INPUT_TOKENS,
    ) -> None:
        self.settings = settings
        self.prices = prices
        self.n_layers = max(1, n_layers)
        self.search_input_tokens = search_input_tokens
        self._clock = clock
        self._started_at = clock()
        self._ids = itertools.count(1)
        self._open: dict[int, Reservation] = {}
        self._open_searches: dict[int, int] = {}
        self._holds: dict[str, WorstCase] = {}  # per agent: its report's worst case
        self._open_sums = RunningSums()  # of _open (searches: of _open_searches)
        self._hold_sums = RunningSums()  # of _holds
        self._burn = BurnWindow()
        self._waiters: deque[_Waiter] = deque()
        self._stops: dict[str, BudgetExhausted] = {}
        self._agents: dict[str, _Totals] = {}
        self._spent_usd = 0.0
        self._unconfirmed = Unconfirmed()
        self._usage = TokenUsage()
        self.records: deque[UsageRecord] = deque(maxlen=RECORDS_KEPT)
        self.on_reserve: Callable[[], None] | None = None
        """Called when a reservation is made (the meter shows it at once: core.engine.budget_feed)."""

    # --- caps ---------------------------------------------------------------------------------

    def layer_share(self, layer: int) -> float:
        """Fraction of each run cap that agents of ``layer`` may fill."""
        n = self.n_layers
        if n == 1:
            return 1.0
        later = n - min(max(layer, 1), n)
        return 1.0 - self.settings.reserve_for_later_layers * later / (n - 1)

    def _violation(
        self, r: CallRequest, need: WorstCase, hold: WorstCase, *, others: bool = True, calls: bool = True
    ) -> BudgetExhausted | None:
        """The first cap that ``need`` (plus the agent's new ``hold``) would cross, or None.

        Without ``others`` the other agents' calls in flight and report holds count as nothing:
        the question is then whether the call could ever fit, once they are settled and done.
        Without ``calls`` only the other agents' calls in flight count as nothing: what will fit
        once they settle (their report holds stay until their agents end).
        """
        s = self.settings
        if (
            s.max_cost_usd is None
            and s.max_searches is None
            and s.max_tokens is None
            and s.per_agent_max_cost_usd is None
            and s.per_agent_max_searches is None
            and r.agent_search_cap is None
        ):
            return None  # no cap to cross: nothing to add up over every agent's calls and holds
        share = self.layer_share(r.layer)
        flying_calls = [x for x in self._open.values() if x.agent_id != r.agent_id and others and calls]
        mine = [x for x in self._open.values() if x.agent_id == r.agent_id]
        held = {a: h for a, h in self._holds.items() if a != r.agent_id} if others else {}
        flying_usd = sum(x.usd for x in flying_calls)
        flying_searches = sum(self._open_searches[x.id] for x in flying_calls)
        flying_tokens = sum(x.tokens for x in flying_calls)
        where = f"; layer {r.layer} of {self.n_layers} may use {share:.0%} of the cap" if share < 1 else ""
        flying = bool(flying_calls or held)
        why: Reason = "reserved" if flying else "spent"

        spent = self._spent_usd
        reserved = flying_usd + sum(x.usd for x in mine) + sum(h.usd for h in held.values())
        if s.max_cost_usd is not None and spent + reserved + need.usd + hold.usd > s.max_cost_usd * share:
            return BudgetExhausted(
                "usd",
                f"run dollar cap ${s.max_cost_usd:.2f}: ${spent:.2f} spent + ${reserved:.2f} reserved by "
                f"calls in flight and reports held + ${need.usd:.2f} for this call + ${hold.usd:.2f} held "
                f"for its agent's report exceeds ${s.max_cost_usd * share:.2f}{where}",
                why,
                needed=need.usd + hold.usd,
                left=max(0.0, s.max_cost_usd * share - spent - reserved),
            )
        searches = self._usage.web_search_requests
        reserved_searches = flying_searches + sum(self._open_searches[x.id] for x in mine)
        search_total = searches + reserved_searches + need.searches
        if s.max_searches is not None and search_total > s.max_searches * share:
            return BudgetExhausted(
                "searches",
                f"run search cap {s.max_searches}: {searches} done + {reserved_searches} reserved + "
                f"{need.searches} for this call exceeds {s.max_searches * share:.0f}{where}",
                why,
                needed=need.searches,
                left=max(0.0, s.max_searches * share - searches - reserved_searches),
            )
        tokens = self._usage.total_tokens
        reserved_tokens = flying_tokens + sum(x.tokens for x in mine) + sum(h.tokens for h in held.values())
        token_total = tokens + reserved_tokens + need.tokens + hold.tokens
        if s.max_tokens is not None and token_total > s.max_tokens * share:
            return BudgetExhausted(
                "tokens",
                f"run token cap {s.max_tokens:,}: {tokens:,} used + {reserved_tokens:,} reserved + "
                f"{need.tokens + hold.tokens:,} for this call and its agent's report exceeds "
                f"{s.max_tokens * share:,.0f}{where}",
                why,
                needed=need.tokens + hold.tokens,
                left=max(0.0, s.max_tokens * share - tokens - reserved_tokens),
            )
        usage, cost = self.agent_usage(r.agent_id)
        my_usd = sum(x.usd for x in mine)
        agent_total = cost + my_usd + need.usd + hold.usd
        if s.per_agent_max_cost_usd is not None and agent_total > s.per_agent_max_cost_usd:
            return BudgetExhausted(
                "agent_usd",
                f"agent {r.agent_id} dollar cap ${s.per_agent_max_cost_usd:.2f}: ${cost:.2f} spent + "
                f"${my_usd:.2f} reserved + ${need.usd:.2f} for this call + ${hold.usd:.2f} held for its "
                "report exceeds it",
                "spent",
                needed=need.usd + hold.usd,
                left=max(0.0, s.per_agent_max_cost_usd - cost - my_usd),
            )
        caps = [c for c in (s.per_agent_max_searches, r.agent_search_cap) if c is not None]
        my_searches = sum(self._open_searches[x.id] for x in mine)
        if caps and usage.web_search_requests + my_searches + need.searches > min(caps):
            return BudgetExhausted(
                "agent_searches",
                f"agent {r.agent_id} search cap {min(caps)}: {usage.web_search_requests} done + "
                f"{my_searches} reserved + {need.searches} for this call exceeds it",
                "spent",
                needed=need.searches,
                left=max(0.0, min(caps) - usage.web_search_requests - my_searches),
            )
        return None

    def _report_hold(self, r: CallRequest, size: Size) -> WorstCase:
        """The worst case of the report after this call: its input grown by this call's output
        and results (and the report prompt's growth with them), no searches, the size's report
        ``max_tokens`` of output."""
        if r.report:
            return NOTHING
        if r.report_input_tokens is None:
            return self._holds.get(r.agent_id, NOTHING)
        growth = r.report_growth[min(size.searches, len(r.report_growth) - 1)] if r.report_growth else 0
        grown = r.report_input_tokens + growth + size.max_tokens + size.searches * self.search_input_tokens
        return worst_case(
            self.prices,
            r.model,
            input_tokens=grown,
            max_tokens=size.report_tokens,
            max_searches=0,
            cache_write=REPORT_CACHE_WRITE,
        )

    def _need(self, r: CallRequest, size: Size) -> WorstCase:
        return worst_case(
            self.prices,
            r.model,
            input_tokens=r.input_tokens,
            max_tokens=size.max_tokens,
            max_searches=size.searches,
            search_input_tokens=self.search_input_tokens,
            cache_write=_cache_write(r, size),
        )

    def _fitting(
        self, r: CallRequest, *, others: bool = True, calls: bool = True
    ) -> tuple[WorstCase, WorstCase, BudgetExhausted | None]:
        """The largest size of the call that fits (:mod:`core.budget.sizing`: searches, then
        ``max_tokens``, then its report hold, down to the request's floors), with the report hold
        it brings; else the smallest size with the cap it crosses."""
        bounds = Bounds.of(
            max_tokens=r.max_tokens,
            max_searches=0 if r.report else r.max_searches,
            min_searches=r.min_searches,
            min_tokens=r.min_max_tokens,
            report_tokens=r.report_max_tokens,
            min_report_tokens=r.min_report_tokens,
            uncached=r.cache_optional and r.cache_write != "none",
        )
        if r.report:
            held = self._holds.get(r.agent_id)

            def report_problem(size: Size) -> BudgetExhausted | None:
                need = self._need(r, size)
                if held is not None and need.usd <= held.usd and need.tokens <= held.tokens:
                    return None  # converts the hold: it was counted against every cap
                return self._violation(r, need, NOTHING, others=others, calls=calls)

            size, problem = report_size(bounds, report_problem)
            return self._need(r, size), NOTHING, problem

        def problem_of(size: Size) -> BudgetExhausted | None:
            hold = self._report_hold(r, size)
            return self._violation(r, self._need(r, size), hold, others=others, calls=calls)

        size, problem = research_size(bounds, problem_of)
        if problem is None and size.searches < min(1, bounds.max_searches):
            # The searchless last resort is for money nobody else can use: a search cap that leaves
            # no search stops research as it always did.
            searching = self._violation(r, WorstCase(0, 0, 1, 0.0), NOTHING, others=others, calls=calls)
            if searching is not None:
                size, problem = Size(bounds.min_tokens, 1, bounds.min_report_tokens, size.cached), searching
        return self._need(r, size), self._report_hold(r, size), problem

    def _never_fits(self, r: CallRequest) -> BudgetExhausted | None:
        """Why waiting cannot help: the call does not fit even with nothing else reserved."""
        return self._fitting(r, others=False)[2]

    def _others_progressing(self, agent_id: str) -> bool:
        """Whether another agent holds budget and is not waiting: it will settle, end or report,
        and that may make room."""
        waiting = {w.request.agent_id for w in self._waiters if not w.future.done()}
        active = {x.agent_id for x in self._open.values()} | set(self._holds)
        return bool(active - waiting - {agent_id})

    def _open_reservation(self, r: CallRequest, need: WorstCase, hold: WorstCase) -> Reservation:
        reservation = Reservation(
            id=next(self._ids),
            agent_id=r.agent_id,
            layer=r.layer,
            model=r.model,
            purpose=r.purpose,
            input_tokens=r.input_tokens,
            max_tokens=need.output_tokens,
            max_searches=need.searches,
            usd=need.usd,
            tokens=need.tokens,
            cache_write=need.cache_write,
        )
        self._open[reservation.id] = reservation
        self._open_searches[reservation.id] = need.searches
        self._open_sums.add(reservation.usd, reservation.tokens, need.searches)
        if r.report:
            self._drop_hold(r.agent_id)
        elif r.report_input_tokens is not None:
            self._drop_hold(r.agent_id)
            self._holds[r.agent_id] = hold
            self._hold_sums.add(hold.usd, hold.tokens)
        self._agents.setdefault(r.agent_id, _Totals(r.layer))
        if self.on_reserve is not None:
            self.on_reserve()
        return reservation

    def reserve_request(self, r: CallRequest) -> Reservation:
        """Hold the call's worst case now, or raise :class:`BudgetExhausted` naming the binding cap."""
        need, hold, problem = self._fitting(r)
        if problem is not None:
            raise problem
        return self._open_reservation(r, need, hold)

    def reserve(self, *, agent_id: str, layer: int, model: str, **kw: Any) -> Reservation:
        """:meth:`reserve_request` with the request's fields as keywords.

        With ``min_searches`` the call may be shrunk: the returned ``max_searches`` is then the
        most searches that fit, and the caller must send it as the request's ``max_uses``.
        """
        return self.reserve_request(CallRequest(agent_id=agent_id, layer=layer, model=model, **kw))

    async def acquire(
        self, r: CallRequest, *, on_wait: Callable[[BudgetExhausted], None] | None = None
    ) -> Reservation:
        """Reserve, waiting (first come, first served) while other agents' calls in flight hold
        the room this call needs; raise :class:`BudgetExhausted` when waiting cannot help."""
        need, hold, problem = self._target(r)
        if problem is None and (r.report or not self._waiters):
            return self._open_reservation(r, need, hold)  # a report spends its own hold: no queue
        never = self._never_fits(r)
        if never is not None:
            raise never
        waiter = _Waiter(r, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._serve()
        if on_wait is not None and not waiter.future.done():
            on_wait(problem or BudgetExhausted("usd", "other agents wait for budget first", "reserved"))
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(waiter.future.result())  # granted as we were cancelled: give it back
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self._serve()

    def _serve(self) -> None:
        """Grant waiters in arrival order; the first that must keep waiting blocks the rest while
        other agents make progress. When none does (everyone left is waiting), the first waiter
        that fits goes ahead; if none fits, one is refused (an agent holding a report first: it
        writes the report and frees what it held beyond it)."""
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.future.done():
                self._waiters.popleft()
                continue
            if self._grant(waiter):
                continue
            never = self._never_fits(waiter.request)
            if never is not None:
                self._refuse(waiter, never)
                continue
            if self._others_progressing(waiter.request.agent_id):
                return
            live = [w for w in self._waiters if not w.future.done()]
            if any(self._grant(w, shrink=True) for w in live):
                continue  # nobody will free room: the first call that fits when shrunk goes ahead
            holding = next((w for w in live if w.request.agent_id in self._holds), waiter)
            problem = self._fitting(holding.request)[2]
            self._refuse(holding, problem or BudgetExhausted("usd", "no budget left to wait for"))

    def _target(self, r: CallRequest) -> tuple[WorstCase, WorstCase, BudgetExhausted | None]:
        """The size to grant a research call: the largest that fits once the other agents' calls
        in flight have settled (they release most of their worst case), with why it does not fit
        now. A call waits for that room rather than shrink for room that is about to come back;
        only what is spent and held for reports shrinks it. A report never waits: it is sized to
        what fits now."""
        if r.report:
            return self._fitting(r)
        need, hold, problem = self._fitting(r, calls=False)
        if problem is None:
            problem = self._violation(r, need, hold)
        return need, hold, problem

    def shrinks(self, r: CallRequest) -> bool:
        """Whether the call would be sent smaller than asked, or not at all, as things stand: a
        tighter bound of its input is then worth asking for."""
        need, _, problem = self._target(r)
        return (
            problem is not None
            or need.output_tokens < r.max_tokens
            or need.searches < r.max_searches
            or need.cache_write != r.cache_write
        )

    def _grant(self, waiter: _Waiter, *, shrink: bool = False) -> bool:
        """Grant the waiter its target size if that fits now (``shrink``: whatever size fits now)."""
        r = waiter.request
        need, hold, problem = self._fitting(r) if shrink else self._target(r)
        if problem is not None:
            return False
        self._waiters.remove(waiter)
        waiter.future.set_result(self._open_reservation(waiter.request, need, hold))
        return True

    def _refuse(self, waiter: _Waiter, problem: BudgetExhausted) -> None:
        self._waiters.remove(waiter)
        waiter.future.set_exception(problem)

    @property
    def waiting(self) -> int:
        """Calls queued for budget."""
        return sum(1 for w in self._waiters if not w.future.done())

    def end_agent(self, agent_id: str) -> None:
        """The agent is done (or stopped): release its report hold, let waiters in."""
        if self._drop_hold(agent_id):
            self._serve()

    def _drop_hold(self, agent_id: str) -> bool:
        hold = self._holds.pop(agent_id, None)
        if hold is not None:
            self._hold_sums.remove(hold.usd, hold.tokens)
        return hold is not None

    def _pop_open(self, reservation_id: int) -> Reservation | None:
        """Take a call out of the calls in flight (None: it was not in flight)."""
        reservation = self._open.pop(reservation_id, None)
        if reservation is not None:
            searches = self._open_searches.pop(reservation_id)
            self._open_sums.remove(reservation.usd, reservation.tokens, searches)
        return reservation

    def record_stop(self, agent_id: str, exhausted: BudgetExhausted) -> None:
        """An agent stopped researching because of ``exhausted`` (for the run's closing message,
        which names the last agent's stop: it is the one that left no agent going)."""
        self._stops.pop(agent_id, None)
        self._stops[agent_id] = exhausted

    def stop_message(self) -> str:
        """Which caps stopped which agents, why none could go on, and what is left of each cap
        (:mod:`core.budget.stops`)."""
        s = self.settings
        spend = Spend(
            spent_usd=self._spent_usd,
            searches=self._usage.web_search_requests,
            tokens=self._usage.total_tokens,
            cap_usd=s.max_cost_usd,
            search_cap=s.max_searches,
            token_cap=s.max_tokens,
        )
        return stop_message({agent: stop.stop() for agent, stop in self._stops.items()}, spend)

    def held_usd(self, agent_id: str) -> float:
        hold = self._holds.get(agent_id)
        return hold.usd if hold is not None else 0.0

    # --- settling -----------------------------------------------------------------------------

    def settle(self, reservation: Reservation, usage: TokenUsage) -> float:
        """Record the call's actual usage, release the rest of its reservation; return its dollars."""
        if self._pop_open(reservation.id) is None:
            raise ValueError(f"reservation {reservation.id} of {reservation.agent_id} is not open")
        return self._close(reservation, usage, billed=True)

    def _close(self, reservation: Reservation, usage: TokenUsage, *, billed: bool) -> float:
        return self._record(reservation.agent_id, reservation.layer, reservation.model, usage, billed=billed)

    def _record(
        self,
        agent_id: str,
        layer: int,
        model: str,
        usage: TokenUsage,
        cost_usd: float | None = None,
        *,
        billed: bool,
    ) -> float:
        """Count a closed call's usage as spent (its dollars priced now unless given; ``billed``: the
        API reported it, otherwise it is a bound, unconfirmed); return its dollars."""
        cost = self.prices.cost(model, usage) if cost_usd is None else cost_usd
        totals = self._agents.setdefault(agent_id, _Totals(layer))
        totals.saved = None
        totals.usage += usage
        totals.cost_usd += cost
        totals.calls += 1
        totals.closed += 1
        if not billed:
            totals.unconfirmed_usd += cost
            totals.unconfirmed_attempts += 1
            totals.unconfirmed_searches += usage.web_search_requests
            self._unconfirmed = self._unconfirmed.plus(cost, usage.web_search_requests)
        self._usage += usage
        self._spent_usd += cost
        at = self._clock()
        self.records.append(UsageRecord(agent_id, layer, model, usage, cost, at))
        self._burn.add(at, cost)
        self._serve()
        return cost

    def charge_failed(
        self, reservation: Reservation, progress: AttemptProgress, outcome: Outcome
    ) -> tuple[Charge, float]:
        """Close the reservation of an attempt that failed, charging what it may have been billed
        (:mod:`core.budget.charges`); return the charge and its dollars. Synchronous, so that it
        runs in a ``finally`` of a cancelled attempt too."""
        if reservation.id not in self._open:
            raise ValueError(f"reservation {reservation.id} of {reservation.agent_id} is not open")
        limits = AttemptLimits(
            max_tokens=reservation.max_tokens,
            max_searches=reservation.max_searches,
            search_input_tokens=self.search_input_tokens,
            dearest=dearest_input(self.prices, reservation.model, reservation.cache_write),
            worst=self.worst_usage(reservation),
        )
        charge = attempt_charge(progress, outcome, limits)
        if charge.basis == "none":
            self.release(reservation)
            return charge, 0.0
        self._pop_open(reservation.id)
        return charge, self._close(reservation, charge.usage, billed=charge.billed)

    def worst_usage(self, reservation: Reservation) -> TokenUsage:
        """The most the reservation's call can be billed (its dollars are ``reservation.usd``)."""
        return worst_usage(
            self.prices,
            reservation.model,
            input_tokens=reservation.input_tokens,
            max_tokens=reservation.max_tokens,
            max_searches=reservation.max_searches,
            search_input_tokens=self.search_input_tokens,
            cache_write=reservation.cache_write,
        )

    def closed(self, agent_id: str) -> int:
        """How many of the agent's reservations have been closed (settled, charged or released)."""
        totals = self._agents.get(agent_id)
        return totals.closed if totals is not None else 0

    def charge_lost(
        self, agent_id: str, layer: int, model: str, usage: TokenUsage, cost_usd: float | None = None
    ) -> float:
        """Charge an attempt that was in flight when the process died (no reservation survives it):
        ``usage`` is its worst case (unconfirmed), ``cost_usd`` its dollars at the prices it was sent
        at (the config may price its model differently now, or not at all). Closes it, as settling it
        would have; returns its dollars. The agent need not be in the config any more."""
        return self._record(agent_id, layer, model, usage, cost_usd, billed=False)

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call failed without usage (idempotent, safe in ``finally``)."""
        if self._pop_open(reservation.id) is not None:
            totals = self._agents.setdefault(reservation.agent_id, _Totals(reservation.layer))
            totals.closed += 1
            totals.saved = None
            self._serve()

    # --- reading ------------------------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        return self._spent_usd

    @property
    def reserved_usd(self) -> float:
        """Calls in flight and reports held."""
        return self._open_sums.usd + self._hold_sums.usd

    def in_flight_usd(self, agent_ids: Collection[str] | None = None) -> float:
        """The worst case held for the calls in flight (of ``agent_ids``, else of every agent): what
        cancelling them now would count, since the API may finish and bill a call we stop reading."""
        return sum(r.usd for r in self._open.values() if agent_ids is None or r.agent_id in agent_ids)

    @property
    def reserved_searches(self) -> int:
        return self._open_sums.searches

    @property
    def reserved_tokens(self) -> int:
        return self._open_sums.tokens + self._hold_sums.tokens

    @property
    def unconfirmed(self) -> Unconfirmed:
        """The run's part of the spend that is a bound, not a reported usage."""
        return self._unconfirmed

    def agent_usage(self, agent_id: str) -> tuple[TokenUsage, float]:
        totals = self._agents.get(agent_id)
        return (totals.usage, totals.cost_usd) if totals is not None else (TokenUsage(), 0.0)

    def agent_unconfirmed(self, agent_id: str) -> Unconfirmed:
        """The agent's part of its spend that is a bound (see :attr:`unconfirmed`)."""
        t = self._agents.get(agent_id)
        if t is None:
            return Unconfirmed()
        return Unconfirmed(t.unconfirmed_usd, t.unconfirmed_attempts, t.unconfirmed_searches)

    def agents(self) -> tuple[str, ...]:
        """Every agent the ledger has charged (one no longer in the config included)."""
        return tuple(agent_id for agent_id, totals in self._agents.items() if totals.cost_usd > 0)

    def agent_layer(self, agent_id: str) -> int | None:
        totals = self._agents.get(agent_id)
        return totals.layer if totals is not None else None

    def layer_usage(self, layer: int) -> tuple[TokenUsage, float]:
        usage, cost = TokenUsage(), 0.0
        for totals in self._agents.values():
            if totals.layer == layer:
                usage, cost = usage + totals.usage, cost + totals.cost_usd
        return usage, cost

    def total_usage(self) -> tuple[TokenUsage, float]:
        return self._usage, self._spent_usd

    def burn_usd_per_min(self) -> float:
        now = self._clock()
        window_start = max(now - BURN_WINDOW_S, self._started_at)
        recent = self._burn.since(window_start)
        span = max(now - window_start, MIN_BURN_SPAN_S)
        return recent / span * 60.0

    def snapshot(self) -> BudgetSnapshot:
        s = self.settings
        reserved = self.reserved_usd
        burn = self.burn_usd_per_min()
        remaining = None if s.max_cost_usd is None else max(0.0, s.max_cost_usd - self._spent_usd - reserved)
        seconds = None if remaining is None or burn <= 0 else remaining / burn * 60.0
        return BudgetSnapshot(
            spent_usd=self._spent_usd,
            unconfirmed_usd=self._unconfirmed.usd,
            unconfirmed_attempts=self._unconfirmed.attempts,
            unconfirmed_searches=self._unconfirmed.searches,
            reserved_usd=reserved,
            cap_usd=s.max_cost_usd,
            remaining_usd=remaining,
            searches=self._usage.web_search_requests,
            reserved_searches=self.reserved_searches,
            search_cap=s.max_searches,
            tokens=self._usage.total_tokens,
            reserved_tokens=self.reserved_tokens,
            token_cap=s.max_tokens,
            usage=self._usage,
            burn_usd_per_min=burn,
            seconds_to_cap=seconds,
        )

    def to_event(self, run_id: str) -> BudgetUpdated:
        # Imported here: the events (80 classes, 30 ms) are not needed by the commands that only
        # price a program (``estimate``), which use the ledger's types.
        from core.events import BudgetUpdated

        snap = self.snapshot()
        return BudgetUpdated(
            run_id=run_id,
            spent_usd=snap.spent_usd,
            unconfirmed_usd=snap.unconfirmed_usd,
            unconfirmed_attempts=snap.unconfirmed_attempts,
            unconfirmed_searches=snap.unconfirmed_searches,
            reserved_usd=snap.reserved_usd,
            cap_usd=snap.cap_usd,
            searches=snap.searches,
            reserved_searches=snap.reserved_searches,
            search_cap=snap.search_cap,
            tokens=snap.tokens,
            token_cap=snap.token_cap,
            burn_usd_per_min=snap.burn_usd_per_min,
            seconds_to_cap=snap.seconds_to_cap,
            usage=snap.usage,
        )

    # --- persistence --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Totals per agent (size independent of the run's length). Calls in flight are not
        included: their usage is unknown until they settle. The unconfirmed part is kept only
        when there is one (a state without it, as every state before the split, is all billed)."""
        return {
            "version": STATE_VERSION,
            "agents": {agent_id: t.state() for agent_id, t in self._agents.items() if t.calls or t.closed},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Count a saved run's spend toward this ledger's caps (which may be new, e.g. raised).

        Replaces this ledger's totals; call it on a fresh ledger, before any reservation.
        """
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError(f"unsupported budget state version {version!r}")
        if self._open:
            raise RuntimeError("restore a ledger before reserving on it")
        self._agents.clear()
        self._usage, self._spent_usd, self._unconfirmed = TokenUsage(), 0.0, Unconfirmed()
        for agent_id, data in state.get("agents", {}).items():
            totals = _Totals(
                layer=int(data["layer"]),
                usage=TokenUsage.from_dict(data.get("usage", {})),
                cost_usd=float(data.get("cost_usd", 0.0)),
                calls=int(data.get("calls", 0)),
            )
            totals.closed = int(data.get("closed", totals.calls))
            totals.unconfirmed_usd = float(data.get("unconfirmed_usd", 0.0))
            totals.unconfirmed_attempts = int(data.get("unconfirmed_attempts", 0))
            totals.unconfirmed_searches = int(data.get("unconfirmed_searches", 0))
            self._agents[agent_id] = totals
            self._usage += totals.usage
            self._spent_usd += totals.cost_usd
            self._unconfirmed = self._unconfirmed.plus(
                totals.unconfirmed_usd, totals.unconfirmed_searches, totals.unconfirmed_attempts
            )

    def raise_agent(
        self,
        agent_id: str,
        layer: int,
        usage: TokenUsage,
        cost_usd: float,
        calls: int,
        unconfirmed: Unconfirmed = ALL_BILLED,
    ) -> float:
        """Raise an agent's restored totals to at least these, because another record of the run
        (its journal) accounts for more than the checkpoint restored: the ledger never goes back.
        Each usage field, the dollars, the calls and the unconfirmed part take the larger value;
        returns the dollars added. Call it right after :meth:`restore`, before any reservation."""
        if self._open:
            raise RuntimeError("raise a restored ledger before reserving on it")
        totals = self._agents.setdefault(agent_id, _Totals(layer))
        totals.saved = None
        before = totals.cost_usd
        mine, theirs = totals.usage.to_dict(), usage.to_dict()
        totals.usage = TokenUsage(**{name: max(mine[name], theirs[name]) for name in mine})
        totals.cost_usd = max(totals.cost_usd, cost_usd)
        if calls > totals.calls:  # calls the checkpoint never saw closed: closed as they were
            totals.closed += calls - totals.calls
            totals.calls = calls
        totals.unconfirmed_usd = max(totals.unconfirmed_usd, unconfirmed.usd)
        totals.unconfirmed_attempts = max(totals.unconfirmed_attempts, unconfirmed.attempts)
        totals.unconfirmed_searches = max(totals.unconfirmed_searches, unconfirmed.searches)
        self._usage = sum((t.usage for t in self._agents.values()), TokenUsage())
        self._spent_usd = sum(t.cost_usd for t in self._agents.values())
        self._unconfirmed = ALL_BILLED
        for t in self._agents.values():
            self._unconfirmed = self._unconfirmed.plus(
                t.unconfirmed_usd, t.unconfirmed_searches, t.unconfirmed_attempts
            )
        return totals.cost_usd - before


def _cache_write(r: CallRequest, size: Size) -> CacheWrite:
    """How the call at ``size`` may write the cache: as asked, or not at all when sent without
    breakpoints (then it reads nothing either, and every input token is plain input); a report
    as :data:`REPORT_CACHE_WRITE` says, whatever it asks."""
    return REPORT_CACHE_WRITE if r.report else r.cache_write if size.cached else "none"


def _unconfirmed_state(totals: _Totals) -> dict[str, Any]:
    if not totals.unconfirmed_attempts:
        return {}
    return {
        "unconfirmed_usd": totals.unconfirmed_usd,
        "unconfirmed_attempts": totals.unconfirmed_attempts,
        "unconfirmed_searches": totals.unconfirmed_searches,
    }
