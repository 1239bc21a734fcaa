"""A pre-flight cost estimate: low, expected and high dollars and searches for a program.

The estimate replays each agent's conversation call by call from the program's shape: its turn
plan (the brief with the reports it reads, follow-ups, the report request), its ``max_tokens``,
``max_uses`` and ``max_searches``, the caching switch and TTL, and the price table. Every call
re-sends the history; with caching on, the prefix the previous call cached is read at the
cache-read price and the rest is written at the TTL's write price, except by the report call,
which reads and writes no cache. Each call is priced with
:meth:`PriceTable.cost`, so tiered prices apply per call exactly as they will be billed.

Three scenarios:

- **low**, a light run: ~150 output tokens per call, one search per user turn whose results
  add few tokens, no continuations, and every reusable prefix cached.
- **expected**, a typical run: 40% of ``max_tokens`` per call, half of ``max_uses`` searches
  per user turn, ~6,000 result tokens per search.
- **high**, the worst case the settings allow: ``max_tokens`` on every call, ``max_uses``
  searches on every request (until the agent's ``max_searches`` is spent), every pause and
  ``max_tokens`` continuation taken, and the server-side search loop re-reading the prompt on
  each search (the ledger's per-call bound, :func:`core.budget.ledger.worst_case`).

Text is counted at ~4 characters per token (``TEXT_CHARS_PER_TOKEN``) for low and expected, and
at one token per UTF-8 byte for high (a bound no tokenizer exceeds, as the ledger counts it). The
report turn of a plan longer than one turn searches in no scenario: it is sent without a search
allowance.

A batch layer's calls are priced at the batch price (tokens at half, searches not:
:attr:`core.config.model.ResolvedAgent.priced_model`); the estimate also prices them streamed, and says what
batch mode saves.

It lives above the engine and the budget, not in ``core.budget``: it prices the engine's own turn
plan (:mod:`core.engine.turn_plan`), and the budget sits below the engine that uses it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from core.budget.pricing import PriceTable
from core.config.model import ResearchConfig, ResolvedAgent
from core.engine.turn_plan import build_plan
from core.prices import SEARCH_INPUT_TOKENS
from core.usage import TokenUsage

TEXT_CHARS_PER_TOKEN = 4
TOOL_DEFINITION_TOKENS = 350
"""The web search tool's definition plus the hidden instructions the API adds with it."""
MESSAGE_OVERHEAD_TOKENS = 5
SOURCES_TOKENS_PER_SEARCH = 60
"""A report's source list: a few cited pages (title and URL) per search of its conversation."""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    output_fraction: float  # of max_tokens, per call
    output_floor: int  # tokens per call at least (but never above max_tokens)
    searches_fraction: float  # of max_uses, per user turn (at least one)
    result_tokens: int  # input tokens each search's results add
    continuations: bool  # take every pause_turn and max_tokens continuation
    reread_per_search: bool  # the server loop re-reads the prompt on each search
    cache_min_prefix: int  # a cached prefix shorter than this is not read from cache
    cheapest_new_input: bool  # new input at min(uncached, write) price: caching may be skipped


LOW = Scenario("low", 0.0, 150, 0.0, 500, False, False, 0, True)
EXPECTED = Scenario("expected", 0.4, 0, 0.5, 6_000, False, False, 1_024, False)
HIGH = Scenario("high", 1.0, 0, 1.0, SEARCH_INPUT_TOKENS, True, True, 4_096, False)
SCENARIOS = (LOW, EXPECTED, HIGH)


@dataclass(frozen=True, slots=True)
class Span:
    """One quantity under the three scenarios."""

    low: float
    expected: float
    high: float

    def __add__(self, other: Span) -> Span:
        return Span(self.low + other.low, self.expected + other.expected, self.high + other.high)

    @staticmethod
    def total(spans: Iterable[Span]) -> Span:
        result = Span(0.0, 0.0, 0.0)
        for span in spans:
            result = result + span
        return result


@dataclass(frozen=True, slots=True)
class AgentEstimate:
    agent_id: str
    layer: int
    model: str
    usd: Span
    searches: Span
    calls: Span


@dataclass(frozen=True, slots=True)
class LayerEstimate:
    layer: int
    name: str
    agent_ids: tuple[str, ...]
    usd: Span
    searches: Span
    mode: str = "stream"
    streamed_usd: Span | None = None  # a batch layer's dollars were it streamed

    @property
    def batch_saving(self) -> Span | None:
        """What batch mode saves on this layer (None for a streamed layer)."""
        if self.streamed_usd is None:
            return None
        s = self.streamed_usd
        return Span(s.low - self.usd.low, s.expected - self.usd.expected, s.high - self.usd.high)


@dataclass(frozen=True, slots=True)
class Estimate:
    program: str
    usd: Span
    searches: Span
    layers: tuple[LayerEstimate, ...]
    agents: tuple[AgentEstimate, ...]
    cap_usd: float | None
    search_cap: int | None
    token_cap: int | None
    per_agent_cap_usd: float | None
    per_agent_search_cap: int | None


@dataclass(frozen=True, slots=True)
class _Outcome:
    usd: float
    searches: int
    calls: int
    report_tokens: int


def _tokens(text: str, sc: Scenario) -> int:
    if sc is HIGH:
        return len(text.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS
    return -(-len(text) // TEXT_CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


class _Conversation:
    """One agent's history and its prompt cache, priced call by call."""

    def __init__(
        self, config: ResearchConfig, prices: PriceTable, agent: ResolvedAgent, sc: Scenario
    ) -> None:
        self.prices, self.agent, self.sc = prices, agent, sc
        self.priced_as = agent.priced_model  # a batch layer's at the batch price
        caching = config.defaults.caching
        self.caching, self.ttl_1h = caching.enabled, caching.ttl == "1h"
        window = prices.context_window(agent.model)
        self.max_prompt = int(window * config.execution_settings.context.compact_at_fraction)
        self.history = _tokens(config.defaults.system_prompt, sc) + TOOL_DEFINITION_TOKENS
        self.cached = 0
        self.usd = 0.0
        self.calls = 0
        self.searches = 0

    def call(self, searches: int, output: int, *, report: bool = False) -> None:
        """One call; a report call neither reads nor writes the cache (its prompt matches
        nothing cached and nothing reads it after: :data:`core.budget.ledger.REPORT_CACHE_WRITE`)."""
        sc, prompt = self.sc, min(self.history, self.max_prompt)
        caching = self.caching and not report
        read = self.cached if caching and self.cached >= sc.cache_min_prefix else 0
        read = min(read, prompt)
        new = prompt - read
        results = searches * sc.result_tokens
        extra_input = 0
        if sc.reread_per_search and searches:
            # Each search starts another sampling iteration that reads the prompt, the output and
            # the results so far (the ledger's worst-case bound).
            pairs = searches * (searches - 1) // 2
            extra_input = searches * (prompt + output) + sc.result_tokens * pairs
        write = 0 if not caching else new
        uncached = new - write + results + extra_input
        if caching and sc.cheapest_new_input:
            rates = self.prices.price(self.agent.model)
            if rates.input <= (rates.cache_write_1h if self.ttl_1h else rates.cache_write_5m):
                uncached, write = uncached + write, 0
        usage = TokenUsage(
            input_tokens=uncached,
            output_tokens=output,
            cache_write_5m_tokens=0 if self.ttl_1h else write,
            cache_write_1h_tokens=write if self.ttl_1h else 0,
            cache_read_input_tokens=read,
            web_search_requests=searches,
        )
        self.usd += self.prices.cost(self.priced_as, usage)
        self.calls += 1
        self.searches += searches
        if caching:
            self.cached = prompt
        self.history += results + output


def _simulate_agent(
    config: ResearchConfig, prices: PriceTable, agent: ResolvedAgent, sc: Scenario, reads_tokens: int
) -> _Outcome:
    defaults = config.defaults
    budget = config.execution_settings.budget
    max_uses = defaults.web_search.per_request
    caps = [c for c in (agent.max_searches, budget.per_agent_max_searches) if c is not None]
    searches_left = min(caps) if caps else math.inf
    output = min(agent.max_tokens, max(sc.output_floor, round(agent.max_tokens * sc.output_fraction)))
    per_turn = max(1, round(max_uses * sc.searches_fraction))
    calls_per_turn = 1
    if sc.continuations:
        calls_per_turn += defaults.max_pause_continuations + defaults.max_tokens_continuations

    conversation = _Conversation(config, prices, agent, sc)
    plan = build_plan(agent, config.program, defaults, {})
    report_output = 0
    for index, prompt in enumerate(plan):
        conversation.history += _tokens(prompt, sc) + (reads_tokens if index == 0 else 0)
        report_turn = index == len(plan) - 1 and len(plan) > 1
        turn_searches = 0
        turn_output = 0
        calls = 1 + defaults.max_tokens_continuations if report_turn and sc.continuations else calls_per_turn
        for _ in range(calls):
            # Low and expected: the turn's searches in one call; high: max_uses on every call.
            wanted = 0 if report_turn else max_uses if sc.continuations else per_turn - turn_searches
            searches = int(max(0, min(wanted, searches_left)))
            conversation.call(searches, output, report=report_turn)
            searches_left -= searches
            turn_searches += searches
            turn_output += output
        if index == len(plan) - 1:  # the report lists the sources of the whole conversation
            report_output = turn_output + SOURCES_TOKENS_PER_SEARCH * conversation.searches
    return _Outcome(conversation.usd, conversation.searches, conversation.calls, report_output)


def estimate(config: ResearchConfig, prices: PriceTable) -> Estimate:
    """Low / expected / high dollars and searches per agent, per layer and for the program."""
    agents = config.agents()
    outcomes: dict[str, dict[str, _Outcome]] = {}
    for agent in agents:  # layer order: an agent's reads are priced before it
        outcomes[agent.id] = {}
        for sc in SCENARIOS:
            reads = sum(outcomes[r][sc.name].report_tokens + 20 for r in agent.reads if r in outcomes)
            outcomes[agent.id][sc.name] = _simulate_agent(config, prices, agent, sc, reads)

    def span(agent_id: str, attr: str) -> Span:
        values = [float(getattr(outcomes[agent_id][sc.name], attr)) for sc in SCENARIOS]
        return Span(*values)

    agent_estimates = tuple(
        AgentEstimate(a.id, a.layer, a.model, span(a.id, "usd"), span(a.id, "searches"), span(a.id, "calls"))
        for a in agents
    )
    layers = []
    for number, layer in enumerate(config.layers, start=1):
        members = [e for e in agent_estimates if e.layer == number]
        streamed = None
        if layer.mode == "batch":  # the same calls at the standard price: what batch mode saves
            streamed = Span.total(
                Span(*(_simulate_agent(config, prices, a.model_copy(update={"mode": "stream"}), sc,
                                       sum(outcomes[r][sc.name].report_tokens + 20 for r in a.reads)).usd
                       for sc in SCENARIOS))
                for a in agents if a.layer == number
            )  # fmt: skip
        layers.append(
            LayerEstimate(
                layer=number,
                name=layer.name,
                agent_ids=tuple(e.agent_id for e in members),
                usd=Span.total(e.usd for e in members),
                searches=Span.total(e.searches for e in members),
                mode=layer.mode,
                streamed_usd=streamed,
            )
        )
    budget = config.execution_settings.budget
    return Estimate(
        program=config.program.name,
        usd=Span.total(e.usd for e in agent_estimates),
        searches=Span.total(e.searches for e in agent_estimates),
        layers=tuple(layers),
        agents=agent_estimates,
        cap_usd=budget.max_cost_usd,
        search_cap=budget.max_searches,
        token_cap=budget.max_tokens,
        per_agent_cap_usd=budget.per_agent_max_cost_usd,
        per_agent_search_cap=budget.per_agent_max_searches,
    )


def format_estimate(est: Estimate) -> str:
    """A plain-text table: per layer and in total, low / expected / high dollars and searches."""
    header = f"{'':<28} {'low $':>10} {'expected $':>11} {'high $':>10}   {'searches (low/exp/high)':>24}"
    lines = [f"Cost estimate for {est.program}", "", header, "-" * len(header)]

    def row(label: str, usd: Span, searches: Span) -> str:
        counts = f"{searches.low:.0f} / {searches.expected:.0f} / {searches.high:.0f}"
        return f"{label:<28} {usd.low:>10.2f} {usd.expected:>11.2f} {usd.high:>10.2f}   {counts:>24}"

    for layer in est.layers:
        mode = ", batch" if layer.mode == "batch" else ""
        lines.append(
            row(f"L{layer.layer} {layer.name} ({len(layer.agent_ids)}{mode})", layer.usd, layer.searches)
        )
        for agent in (a for a in est.agents if a.layer == layer.layer):
            lines.append(row(f"   {agent.agent_id}", agent.usd, agent.searches))
    lines += ["-" * len(header), row("total", est.usd, est.searches), ""]
    lines += estimate_notes(est)
    return "\n".join(lines)


def estimate_notes(est: Estimate) -> list[str]:
    """What goes under the table: the caps, warnings when the expected run exceeds one, the bound."""
    caps = []
    if est.cap_usd is not None:
        caps.append(f"${est.cap_usd:,.2f}")
    if est.search_cap is not None:
        caps.append(f"{est.search_cap:,} searches")
    if est.token_cap is not None:
        caps.append(f"{est.token_cap:,} tokens")
    if est.per_agent_cap_usd is not None:
        caps.append(f"${est.per_agent_cap_usd:,.2f} per agent")
    if est.per_agent_search_cap is not None:
        caps.append(f"{est.per_agent_search_cap:,} searches per agent")
    lines = ["Budget caps: " + (", ".join(caps) if caps else "none (the run is not capped)")]
    if est.cap_usd is not None and est.usd.expected > est.cap_usd:
        lines.append(
            f"WARNING: the expected cost ${est.usd.expected:,.2f} exceeds the ${est.cap_usd:,.2f} cap: "
            "the run will likely stop early with partial reports (exit 3)."
        )
    if est.search_cap is not None and est.searches.expected > est.search_cap:
        lines.append(
            f"WARNING: the expected {est.searches.expected:,.0f} searches exceed the cap of "
            f"{est.search_cap:,}."
        )
    for layer in est.layers:
        saving, streamed = layer.batch_saving, layer.streamed_usd
        if saving is not None and streamed is not None:
            lines.append(
                f"Batch layer L{layer.layer} {layer.name}: ${layer.usd.expected:,.2f} expected at the batch "
                f"price (tokens at 50%, searches at the normal price), ${streamed.expected:,.2f} streamed: "
                f"saves ${saving.expected:,.2f} (low ${saving.low:,.2f}, high ${saving.high:,.2f}); its "
                "results arrive when each round's batch ends (usually within the hour), not streamed."
            )
    lines.append("High assumes max_tokens on every call and every search and continuation allowed.")
    if est.cap_usd is not None and est.usd.high > est.cap_usd:
        lines.append(f"The budget ledger stops the run at ${est.cap_usd:,.2f} whatever happens.")
    return lines
