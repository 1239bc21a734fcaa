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
(``fixtures/anthropic-recorded/web-search-non-streaming.json``) billed 11,306 input tokens for a
one-line question. ``P`` is the caller's *bound* (UTF-8 bytes of what is sent, or the previous
call's billed usage plus what was added since): never an average.

Reports are always affordable. A research call also holds, for its agent, the worst case of the
report call that could follow it (the history after this call, grown by ``M`` and ``s·R``, sent
with no searches). The hold counts against every cap like a reservation; the agent's report call
converts it, so a report never waits on, or is refused by, a cap once research has started.

Reservations wait. :meth:`BudgetLedger.acquire` queues a call that does not fit *now* but would
fit once other agents' calls in flight settle; waiters are served first come, first served. A
call that cannot fit even with nothing else in flight (or when nothing else is in flight or
about to be) is refused with :class:`BudgetExhausted`, which says which cap bound and whether
spending or reservations were the reason.

Reserve for later layers: an agent of layer ``l`` of ``n`` may only fill each run cap up to
``cap × (1 − reserve × (n − l)/(n − 1))``, so the synthesis can always be written.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from core.api.attempt import AttemptProgress, Outcome
from core.api.usage import TokenUsage
from core.budget.charges import AttemptLimits, Charge, InputField, attempt_charge
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.events import BudgetUpdated

SEARCH_INPUT_TOKENS = 10_000
"""Input tokens one web search may add to its call (its ~10 results, encrypted page content)."""
BURN_WINDOW_S = 300.0
"""The burn rate is the spend of the settled calls of the last five minutes."""
MIN_BURN_SPAN_S = 30.0
"""Floor of the burn-rate denominator, so the first settled call does not read as a spike."""
RECORDS_KEPT = 100_000
"""Usage records kept in memory (about one per API call; persisted state holds totals only)."""
STATE_VERSION = 1

CacheWrite = Literal["none", "5m", "1h"]
"""How a request's input may be written to the cache: its TTL, or not at all (caching off)."""
Reason = Literal["spent", "reserved"]


class BudgetExhausted(Exception):
    """A call's worst case does not fit a cap: the call must not be made.

    ``reason`` is ``"spent"`` when the call cannot fit even with nothing else reserved, and
    ``"reserved"`` when it is other agents' reservations (calls in flight, reports held) that
    leave no room for it.
    """

    def __init__(self, cap: str, message: str, reason: Reason = "spent") -> None:
        self.cap = cap  # "usd", "searches", "tokens", "agent_usd", "agent_searches"
        self.message = message
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The most one call can be billed, from the bounds the request itself sets."""

    input_tokens: int
    output_tokens: int
    searches: int
    usd: float

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
    )


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What a caller asks the ledger to hold for one call.

    ``report_input_tokens`` (a research call) is a bound of the input of the report call that
    could follow this one, before this call's growth; the ledger then holds that report's worst
    case for the agent. ``None`` keeps the agent's current hold. ``report`` marks the report call
    itself, which converts the hold.
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
    report: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    """Budget held for one call in flight; settle it with the call's usage, or release it."""

    id: int
    agent_id: str
    layer: int
    model: str
    purpose: str
    input_tokens: int
    max_tokens: int
    max_searches: int  # the request's max_uses must not exceed this (it may have been shrunk)
    usd: float
    tokens: int
    cache_write: CacheWrite = "1h"


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
    spent_usd: float
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


@dataclass(slots=True)
class _Totals:
    layer: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    calls: int = 0
    closed: int = 0  # reservations settled, charged or released: what a write-ahead entry is matched by


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
        self._waiters: deque[_Waiter] = deque()
        self._stops: dict[str, BudgetExhausted] = {}
        self._agents: dict[str, _Totals] = {}
        self._spent_usd = 0.0
        self._usage = TokenUsage()
        self.records: deque[UsageRecord] = deque(maxlen=RECORDS_KEPT)

    # --- caps ---------------------------------------------------------------------------------

    def layer_share(self, layer: int) -> float:
        """Fraction of each run cap that agents of ``layer`` may fill."""
        n = self.n_layers
        if n == 1:
            return 1.0
        later = n - min(max(layer, 1), n)
        return 1.0 - self.settings.reserve_for_later_layers * later / (n - 1)

    def _violation(
        self, r: CallRequest, need: WorstCase, hold: WorstCase, *, others: bool = True
    ) -> BudgetExhausted | None:
        """The first cap that ``need`` (plus the agent's new ``hold``) would cross, or None.

        Without ``others`` the other agents' calls in flight and report holds count as nothing:
        the question is then whether the call could ever fit, once they are settled and done.
        """
        s = self.settings
        share = self.layer_share(r.layer)
        calls = [x for x in self._open.values() if x.agent_id != r.agent_id] if others else []
        mine = [x for x in self._open.values() if x.agent_id == r.agent_id]
        held = {a: h for a, h in self._holds.items() if a != r.agent_id} if others else {}
        flying_usd = sum(x.usd for x in calls)
        flying_searches = sum(self._open_searches[x.id] for x in calls)
        flying_tokens = sum(x.tokens for x in calls)
        where = f"; layer {r.layer} of {self.n_layers} may use {share:.0%} of the cap" if share < 1 else ""
        flying = bool(calls or held)
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
            )
        caps = [c for c in (s.per_agent_max_searches, r.agent_search_cap) if c is not None]
        my_searches = sum(self._open_searches[x.id] for x in mine)
        if caps and usage.web_search_requests + my_searches + need.searches > min(caps):
            return BudgetExhausted(
                "agent_searches",
                f"agent {r.agent_id} search cap {min(caps)}: {usage.web_search_requests} done + "
                f"{my_searches} reserved + {need.searches} for this call exceeds it",
                "spent",
            )
        return None

    def _report_hold(self, r: CallRequest, searches: int) -> WorstCase:
        """The worst case of the report after this call: its input grown by this call's output
        and results, no searches, ``max_tokens`` of output."""
        if r.report:
            return NOTHING
        if r.report_input_tokens is None:
            return self._holds.get(r.agent_id, NOTHING)
        return worst_case(
            self.prices,
            r.model,
            input_tokens=r.report_input_tokens + r.max_tokens + searches * self.search_input_tokens,
            max_tokens=r.max_tokens,
            max_searches=0,
            cache_write=r.cache_write,
        )

    def _need(self, r: CallRequest, searches: int) -> WorstCase:
        return worst_case(
            self.prices,
            r.model,
            input_tokens=r.input_tokens,
            max_tokens=r.max_tokens,
            max_searches=searches,
            search_input_tokens=self.search_input_tokens,
            cache_write=r.cache_write,
        )

    def _fitting(
        self, r: CallRequest, *, others: bool = True
    ) -> tuple[WorstCase, WorstCase, BudgetExhausted | None]:
        """The call with the most searches (``max_searches`` down to ``min_searches``) that fits,
        with the report hold it brings."""
        highest = max(0, r.max_searches)
        lowest = highest if r.min_searches is None else max(0, min(r.min_searches, highest))
        if r.report:
            need = self._need(r, 0)
            held = self._holds.get(r.agent_id)
            if held is not None and need.usd <= held.usd and need.tokens <= held.tokens:
                return need, NOTHING, None  # converts the hold: it was counted against every cap
        need, hold = NOTHING, NOTHING
        problem: BudgetExhausted | None = None
        for searches in range(highest, lowest - 1, -1):
            need, hold = self._need(r, searches), self._report_hold(r, searches)
            problem = self._violation(r, need, hold, others=others)
            if problem is None:
                return need, hold, None
        return need, hold, problem

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
            max_tokens=r.max_tokens,
            max_searches=need.searches,
            usd=need.usd,
            tokens=need.tokens,
            cache_write=r.cache_write,
        )
        self._open[reservation.id] = reservation
        self._open_searches[reservation.id] = need.searches
        if r.report:
            self._holds.pop(r.agent_id, None)
        elif r.report_input_tokens is not None:
            self._holds[r.agent_id] = hold
        self._agents.setdefault(r.agent_id, _Totals(r.layer))
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
        need, hold, problem = self._fitting(r)
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
            if any(self._grant(w) for w in live[1:]):
                continue
            holding = next((w for w in live if w.request.agent_id in self._holds), waiter)
            problem = self._fitting(holding.request)[2]
            self._refuse(holding, problem or BudgetExhausted("usd", "no budget left to wait for"))

    def _grant(self, waiter: _Waiter) -> bool:
        need, hold, problem = self._fitting(waiter.request)
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
        if self._holds.pop(agent_id, None) is not None:
            self._serve()

    def record_stop(self, agent_id: str, exhausted: BudgetExhausted) -> None:
        """An agent stopped researching because of ``exhausted`` (for the run's closing message)."""
        self._stops[agent_id] = exhausted

    def stop_message(self) -> str:
        """Which caps stopped which agents, and why, with the spend against each run cap."""
        labels = {
            "usd": "the run dollar cap",
            "searches": "the run search cap",
            "tokens": "the run token cap",
            "agent_usd": "the per-agent dollar cap",
            "agent_searches": "the per-agent search cap",
        }
        by_cap: dict[str, list[str]] = {}
        for agent_id, stop in self._stops.items():
            by_cap.setdefault(stop.cap, []).append(agent_id)
        s, parts = self.settings, []
        for cap, agents in sorted(by_cap.items()):
            waited = sum(1 for a in agents if self._stops[a].reason == "reserved")
            why = f", {waited} of them for lack of room beside others' reservations" if waited else ""
            names = ", ".join(agents[:5]) + (f" and {len(agents) - 5} more" if len(agents) > 5 else "")
            parts.append(f"{labels.get(cap, cap)} stopped {names}{why}")
        spend = []
        if s.max_cost_usd is not None:
            spend.append(f"${self._spent_usd:.2f} of ${s.max_cost_usd:.2f} spent")
        if s.max_searches is not None:
            spend.append(f"{self._usage.web_search_requests} of {s.max_searches} searches")
        lead = "a budget cap was reached" + (f" ({'; '.join(spend)})" if spend else "")
        return f"{lead}: {'; '.join(parts) or 'no agent could start'}; results saved"

    def held_usd(self, agent_id: str) -> float:
        hold = self._holds.get(agent_id)
        return hold.usd if hold is not None else 0.0

    # --- settling -----------------------------------------------------------------------------

    def settle(self, reservation: Reservation, usage: TokenUsage) -> float:
        """Record the call's actual usage, release the rest of its reservation; return its dollars."""
        if self._open.pop(reservation.id, None) is None:
            raise ValueError(f"reservation {reservation.id} of {reservation.agent_id} is not open")
        del self._open_searches[reservation.id]
        return self._record(reservation.agent_id, reservation.layer, reservation.model, usage)

    def _record(self, agent_id: str, layer: int, model: str, usage: TokenUsage) -> float:
        """Count a closed call's usage as spent; return its dollars."""
        cost = self.prices.cost(model, usage)
        totals = self._agents.setdefault(agent_id, _Totals(layer))
        totals.usage += usage
        totals.cost_usd += cost
        totals.calls += 1
        totals.closed += 1
        self._usage += usage
        self._spent_usd += cost
        self.records.append(UsageRecord(agent_id, layer, model, usage, cost, self._clock()))
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
        return charge, self.settle(reservation, charge.usage)

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

    def charge_lost(self, agent_id: str, layer: int, model: str, usage: TokenUsage) -> float:
        """Charge an attempt that was in flight when the process died (no reservation survives it):
        ``usage`` is its worst case. Closes it, as settling it would have; returns its dollars."""
        return self._record(agent_id, layer, model, usage)

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call failed without usage (idempotent, safe in ``finally``)."""
        if self._open.pop(reservation.id, None) is not None:
            self._open_searches.pop(reservation.id, None)
            self._agents.setdefault(reservation.agent_id, _Totals(reservation.layer)).closed += 1
            self._serve()

    # --- reading ------------------------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        return self._spent_usd

    @property
    def reserved_usd(self) -> float:
        """Calls in flight and reports held."""
        return sum(r.usd for r in self._open.values()) + sum(h.usd for h in self._holds.values())

    @property
    def reserved_searches(self) -> int:
        return sum(self._open_searches.values())

    @property
    def reserved_tokens(self) -> int:
        return sum(r.tokens for r in self._open.values()) + sum(h.tokens for h in self._holds.values())

    def agent_usage(self, agent_id: str) -> tuple[TokenUsage, float]:
        totals = self._agents.get(agent_id)
        return (totals.usage, totals.cost_usd) if totals is not None else (TokenUsage(), 0.0)

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
        recent = 0.0
        for record in reversed(self.records):
            if record.at < window_start:
                break
            recent += record.cost_usd
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
        snap = self.snapshot()
        return BudgetUpdated(
            run_id=run_id,
            spent_usd=snap.spent_usd,
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
        included: their usage is unknown until they settle."""
        return {
            "version": STATE_VERSION,
            "agents": {
                agent_id: {
                    "layer": t.layer,
                    "usage": t.usage.to_dict(),
                    "cost_usd": t.cost_usd,
                    "calls": t.calls,
                    "closed": t.closed,
                }
                for agent_id, t in self._agents.items()
                if t.calls or t.closed
            },
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
        self._usage, self._spent_usd = TokenUsage(), 0.0
        for agent_id, data in state.get("agents", {}).items():
            totals = _Totals(
                layer=int(data["layer"]),
                usage=TokenUsage.from_dict(data.get("usage", {})),
                cost_usd=float(data.get("cost_usd", 0.0)),
                calls=int(data.get("calls", 0)),
            )
            totals.closed = int(data.get("closed", totals.calls))
            self._agents[agent_id] = totals
            self._usage += totals.usage
            self._spent_usd += totals.cost_usd
