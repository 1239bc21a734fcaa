"""The budget ledger: reserve a call's worst case before it is made, settle to its usage after.

Why reservations: several agents are in flight at once, so checking the spend only after calls
finish lets each of them overshoot. Here a call is made only if ``spent + reserved + its worst
case`` fits every cap, and the check and the record happen in one synchronous method on the one
event loop, so no interleaving of agents can cross a cap.

Why the worst case holds. One call with web search runs a server-side loop: up to ``s`` searches
(the request's ``max_uses``), each followed by another sampling iteration that re-reads the whole
prompt so far, and the API bills the input of every iteration. With ``P`` the prompt's tokens,
``M`` = ``max_tokens`` and ``R`` the tokens one search's results add (``search_input_tokens``),
the billed input is at most ``(s + 1)·P + s·M + R·s(s + 1)/2`` (each iteration re-reads the
prompt, the output so far and the results so far), priced at the dearest input rate (a cache
write can cost 2x); the output is at most ``M``; the searches at most ``s``. ``R`` defaults to
10,000: a real recorded search (``fixtures/anthropic-recorded/web-search-non-streaming.json``)
billed 11,306 input tokens for a one-line question. ``P`` is the caller's estimate; if a caller
under-estimates it, or a search returns more than ``R``, the actual spend is still recorded as
reported and every later reservation sees it, so at worst one call per agent in flight can
overshoot by its estimate's error. Callers that want progress under a tight cap pass
``min_searches``: the reservation then shrinks the call's searches (its ``max_uses``) to fit.

Reserve for later layers: an agent of layer ``l`` of ``n`` may only fill each run cap up to
``cap × (1 − reserve × (n − l)/(n − 1))``, so the synthesis can always be written.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.api.usage import TokenUsage
from core.budget.pricing import PER_MILLION, PriceTable
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


class BudgetExhausted(Exception):
    """A call's worst case does not fit a cap: the call must not be made."""

    def __init__(self, cap: str, message: str) -> None:
        self.cap = cap  # "usd", "searches", "tokens", "agent_usd", "agent_searches"
        self.message = message
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


def worst_case(
    prices: PriceTable,
    model: str,
    *,
    input_tokens: int,
    max_tokens: int,
    max_searches: int,
    search_input_tokens: int = SEARCH_INPUT_TOKENS,
) -> WorstCase:
    """Upper bound of one call's usage and dollars (see the module docstring for the formula)."""
    s = max(0, max_searches)
    billed_input = (s + 1) * input_tokens + s * max_tokens + search_input_tokens * s * (s + 1) // 2
    rates = prices.price(model).for_prompt(billed_input)
    usd = (billed_input * rates.max_input + max_tokens * rates.output) / PER_MILLION + prices.search_cost(s)
    return WorstCase(input_tokens=billed_input, output_tokens=max_tokens, searches=s, usd=usd)


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
    reserved_usd: float
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
        self, agent_id: str, layer: int, need: WorstCase, agent_search_cap: int | None
    ) -> BudgetExhausted | None:
        s = self.settings
        share = self.layer_share(layer)
        spent, reserved = self._spent_usd, self.reserved_usd
        where = f"layer {layer} of {self.n_layers} may use {share:.0%} of"
        if s.max_cost_usd is not None and spent + reserved + need.usd > s.max_cost_usd * share:
            return BudgetExhausted(
                "usd",
                f"run dollar cap: ${spent:.2f} spent + ${reserved:.2f} reserved + ${need.usd:.2f} for this "
                f"call exceeds ${s.max_cost_usd * share:.2f} ({where} ${s.max_cost_usd:.2f})",
            )
        searches, reserved_searches = self._usage.web_search_requests, self.reserved_searches
        search_total = searches + reserved_searches + need.searches
        if s.max_searches is not None and search_total > s.max_searches * share:
            return BudgetExhausted(
                "searches",
                f"run search cap: {searches} done + {reserved_searches} reserved + {need.searches} for this "
                f"call exceeds {s.max_searches * share:.0f} ({where} {s.max_searches})",
            )
        tokens, reserved_tokens = self._usage.total_tokens, self.reserved_tokens
        if s.max_tokens is not None and tokens + reserved_tokens + need.tokens > s.max_tokens * share:
            return BudgetExhausted(
                "tokens",
                f"run token cap: {tokens:,} used + {reserved_tokens:,} reserved + {need.tokens:,} for this "
                f"call exceeds {s.max_tokens * share:,.0f} ({where} {s.max_tokens:,})",
            )
        usage, cost = self.agent_usage(agent_id)
        mine = [r for r in self._open.values() if r.agent_id == agent_id]
        my_usd = sum(r.usd for r in mine)
        if s.per_agent_max_cost_usd is not None and cost + my_usd + need.usd > s.per_agent_max_cost_usd:
            return BudgetExhausted(
                "agent_usd",
                f"agent {agent_id} dollar cap: ${cost:.2f} spent + ${my_usd:.2f} reserved + ${need.usd:.2f} "
                f"for this call exceeds ${s.per_agent_max_cost_usd:.2f}",
            )
        caps = [c for c in (s.per_agent_max_searches, agent_search_cap) if c is not None]
        my_searches = sum(self._open_searches[r.id] for r in mine)
        if caps and usage.web_search_requests + my_searches + need.searches > min(caps):
            return BudgetExhausted(
                "agent_searches",
                f"agent {agent_id} search cap: {usage.web_search_requests} done + {my_searches} reserved + "
                f"{need.searches} for this call exceeds {min(caps)}",
            )
        return None

    def _fitting(
        self,
        agent_id: str,
        layer: int,
        model: str,
        input_tokens: int,
        max_tokens: int,
        max_searches: int,
        min_searches: int | None,
        agent_search_cap: int | None,
    ) -> tuple[WorstCase, BudgetExhausted | None]:
        """The call with the most searches (from ``max_searches`` down to ``min_searches``) that fits."""
        lowest = max_searches if min_searches is None else max(0, min(min_searches, max_searches))
        need = None
        problem: BudgetExhausted | None = None
        for searches in range(max_searches, lowest - 1, -1):
            need = worst_case(
                self.prices,
                model,
                input_tokens=input_tokens,
                max_tokens=max_tokens,
                max_searches=searches,
                search_input_tokens=self.search_input_tokens,
            )
            problem = self._violation(agent_id, layer, need, agent_search_cap)
            if problem is None:
                return need, None
        assert need is not None
        return need, problem

    def reserve(
        self,
        *,
        agent_id: str,
        layer: int,
        model: str,
        input_tokens: int,
        max_tokens: int,
        max_searches: int,
        agent_search_cap: int | None = None,
        purpose: str = "turn",
        min_searches: int | None = None,
    ) -> Reservation:
        """Hold the call's worst case, or raise :class:`BudgetExhausted` naming the binding cap.

        With ``min_searches`` the call may be shrunk: the returned ``max_searches`` is then the
        most searches that fit, and the caller must send it as the request's ``max_uses``.
        """
        need, problem = self._fitting(
            agent_id, layer, model, input_tokens, max_tokens, max_searches, min_searches, agent_search_cap
        )
        if problem is not None:
            raise problem
        reservation = Reservation(
            id=next(self._ids),
            agent_id=agent_id,
            layer=layer,
            model=model,
            purpose=purpose,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            max_searches=need.searches,
            usd=need.usd,
            tokens=need.tokens,
        )
        self._open[reservation.id] = reservation
        self._open_searches[reservation.id] = need.searches
        self._agents.setdefault(agent_id, _Totals(layer))
        return reservation

    def fits(
        self,
        *,
        agent_id: str,
        layer: int,
        model: str,
        input_tokens: int,
        max_tokens: int,
        max_searches: int,
        agent_search_cap: int | None = None,
        min_searches: int | None = None,
    ) -> bool:
        """Whether :meth:`reserve` with these arguments would succeed now (e.g. a last report turn)."""
        _, problem = self._fitting(
            agent_id, layer, model, input_tokens, max_tokens, max_searches, min_searches, agent_search_cap
        )
        return problem is None

    # --- settling -----------------------------------------------------------------------------

    def settle(self, reservation: Reservation, usage: TokenUsage) -> float:
        """Record the call's actual usage, release the rest of its reservation; return its dollars."""
        if self._open.pop(reservation.id, None) is None:
            raise ValueError(f"reservation {reservation.id} of {reservation.agent_id} is not open")
        del self._open_searches[reservation.id]
        cost = self.prices.cost(reservation.model, usage)
        totals = self._agents.setdefault(reservation.agent_id, _Totals(reservation.layer))
        totals.usage += usage
        totals.cost_usd += cost
        totals.calls += 1
        self._usage += usage
        self._spent_usd += cost
        r = reservation
        self.records.append(UsageRecord(r.agent_id, r.layer, r.model, usage, cost, self._clock()))
        return cost

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation whose call failed without usage (idempotent, safe in ``finally``)."""
        self._open.pop(reservation.id, None)
        self._open_searches.pop(reservation.id, None)

    # --- reading ------------------------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        return self._spent_usd

    @property
    def reserved_usd(self) -> float:
        return sum(r.usd for r in self._open.values())

    @property
    def reserved_searches(self) -> int:
        return sum(self._open_searches.values())

    @property
    def reserved_tokens(self) -> int:
        return sum(r.tokens for r in self._open.values())

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
                }
                for agent_id, t in self._agents.items()
                if t.calls
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
            self._agents[agent_id] = totals
            self._usage += totals.usage
            self._spent_usd += totals.cost_usd
