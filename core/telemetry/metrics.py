"""The run's metrics, counted from its events: dollars (billed and unconfirmed), tokens by kind,
searches, calls by outcome, retries by kind, agents by status, budget waits, stream throughput.

Totals are kept in plain dictionaries as events arrive and handed to OpenTelemetry by observable
instruments, read only when an exporter or a scrape collects: an event costs a dictionary update,
not the SDK's per-measurement bookkeeping (done once per collection instead). Only the two
histograms record per event. Counters count what this process saw (a resumed run's start again
at zero, as any restarted process's do); ``research_orchestrator.run.cost`` is the run's spend,
resumes included, from the ledger. The names are listed in README.md ("Telemetry").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from core import events as ev
from core.status import AgentStatus
from core.usage import TokenUsage

P = "research_orchestrator"
_STATUS_OF: dict[type[ev.Event], AgentStatus] = {
    ev.AgentStarted: AgentStatus.RUNNING,
    ev.AgentResumed: AgentStatus.RUNNING,
    ev.AgentBudgetWaitEnded: AgentStatus.RUNNING,
    ev.AgentPausing: AgentStatus.PAUSING,
    ev.AgentPaused: AgentStatus.PAUSED,
    ev.AgentBudgetWaitStarted: AgentStatus.WAITING_FOR_BUDGET,
    ev.AgentInterrupted: AgentStatus.INTERRUPTED,
    ev.AgentKilled: AgentStatus.KILLED,
    ev.AgentFailed: AgentStatus.FAILED,
    ev.AgentSkipped: AgentStatus.SKIPPED,
}
Labels = tuple[tuple[str, str], ...]


def _observe(totals: Mapping[Labels, float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A callback reporting ``totals`` (copied first: it runs on the exporter's or the scrape's thread)."""

    def callback(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(labels)) for labels, value in dict(totals).items()]

    return callback


class RunMetrics:
    """The instruments on ``meter`` and the event handler that feeds them."""

    def __init__(self, meter: Meter) -> None:
        self._cost: dict[Labels, float] = {(): 0.0}
        self._unconfirmed: dict[Labels, float] = {(): 0.0}
        self._tokens: Counter[Labels] = Counter()
        self._searches: Counter[Labels] = Counter()
        self._calls: Counter[Labels] = Counter()
        self._retries: Counter[Labels] = Counter()
        self._by_status: Counter[Labels] = Counter()
        self._run: dict[Labels, float] = {}
        self._reserved: dict[Labels, float] = {}
        self._run_money: dict[Labels, float] = {}
        for name, unit, description, totals in (
            (f"{P}.cost.billed", "USD", "usage the API reported", self._cost),
            (
                f"{P}.cost.unconfirmed",
                "USD",
                "bounds of attempts whose usage never arrived",
                self._unconfirmed,
            ),
            (f"{P}.tokens", "{token}", "tokens by kind", self._tokens),
            (f"{P}.searches", "{search}", "web searches", self._searches),
            (f"{P}.calls", "{call}", "API calls by outcome", self._calls),
            (f"{P}.retries", "{retry}", "retries by kind", self._retries),
        ):
            meter.create_observable_counter(name, [_observe(totals)], unit=unit, description=description)
        meter.create_observable_gauge(
            f"{P}.agents", [_observe(self._by_status)], unit="{agent}", description="agents by status"
        )
        meter.create_observable_gauge(
            f"{P}.run.cost",
            [_observe(self._run)],
            unit="USD",
            description="the run's spend, resumes included",
        )
        meter.create_observable_gauge(
            f"{P}.run.money",
            [_observe(self._run_money)],
            unit="USD",
            description="the run's spend by money (billed, unconfirmed), resumes included",
        )
        meter.create_observable_gauge(
            f"{P}.run.reserved", [_observe(self._reserved)], unit="USD", description="dollars reserved now"
        )
        self.budget_wait = meter.create_histogram(
            f"{P}.budget.wait", unit="s", description="how long an agent waited for a reservation"
        )
        self.throughput = meter.create_histogram(
            f"{P}.stream.throughput",
            unit="{token}/s",
            description="output tokens per second of a completed turn",
        )
        self._status: dict[str, AgentStatus] = {}
        self._turn_start: dict[str, float] = {}
        self._waiting: dict[str, float] = {}

    def handle(self, event: ev.Event) -> None:
        agent = event.agent_id or ""
        match event:
            case ev.TurnCompleted():
                self._usage(event.usage, event.cost_usd, True)
                self._calls[(("outcome", "completed"),)] += 1
                started = self._turn_start.get(agent)
                if started is not None and event.at > started:
                    self.throughput.record(event.usage.output_tokens / (event.at - started))
                self._turn_start[agent] = event.at
            case ev.AttemptCharged():
                self._usage(event.usage, event.cost_usd, event.billed)
            case ev.ContextCompacted():
                self._usage(event.usage, event.cost_usd, True)
                self._calls[(("outcome", "compaction"),)] += 1
            case ev.RetryScheduled():
                self._retries[(("kind", event.error_kind),)] += 1
                self._calls[(("outcome", "retried"),)] += 1
                self._turn_start[agent] = event.at + event.wait_s
            case ev.ApiErrorRaised():
                self._calls[(("outcome", "failed"),)] += 1
            case ev.BudgetUpdated():
                self._run[()] = event.spent_usd
                self._run_money[(("money", "billed"),)] = event.billed_usd
                self._run_money[(("money", "unconfirmed"),)] = event.unconfirmed_usd
                self._reserved[()] = event.reserved_usd
            case ev.RunStarted():
                for agent_id, _, _ in event.agents:
                    seed = event.seeds.get(agent_id)
                    self._move(agent_id, seed.status if seed is not None else AgentStatus.PENDING)
            case ev.AgentFinished():
                self._move(agent, event.status)
            case _:
                status = _STATUS_OF.get(type(event))
                if status is None:
                    return
                if isinstance(event, ev.AgentStarted):
                    self._turn_start[agent] = event.at
                elif isinstance(event, ev.AgentBudgetWaitStarted):
                    self._waiting[agent] = event.at
                elif isinstance(event, ev.AgentBudgetWaitEnded) and agent in self._waiting:
                    self.budget_wait.record(event.at - self._waiting.pop(agent))
                    self._turn_start[agent] = event.at
                self._move(agent, status)

    def _usage(self, usage: TokenUsage, cost: float, billed: bool) -> None:
        money = "billed" if billed else "unconfirmed"
        (self._cost if billed else self._unconfirmed)[()] += cost
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_input_tokens),
            ("cache_creation", usage.cache_creation_input_tokens),
        ):
            if count:
                self._tokens[(("kind", kind), ("money", money))] += count
        if usage.web_search_requests:
            self._searches[(("money", money),)] += usage.web_search_requests

    def _move(self, agent_id: str, status: AgentStatus) -> None:
        before = self._status.get(agent_id)
        if before is status:
            return
        if before is not None:
            self._by_status[(("status", before.value),)] -= 1  # kept at 0: the series stays, at zero
        self._by_status[(("status", status.value),)] += 1
        self._status[agent_id] = status
