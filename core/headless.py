"""The headless front end: a live Rich table on a terminal, plain log lines elsewhere (CI, pipes)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from core.events import (
    AgentFailed,
    AgentFinished,
    AgentKilled,
    AgentPaused,
    AgentStarted,
    ApiErrorRaised,
    BudgetCapReached,
    BudgetUpdated,
    Event,
    RetryScheduled,
    RunFinished,
    RunStarted,
    SearchIssued,
    TextStreamed,
    TurnCompleted,
)

GLYPHS = {
    "pending": "○",
    "running": "●",
    "paused": "‖",
    "completed": "✓",
    "refused": "⊘",
    "budget_exhausted": "$",
    "failed": "✗",
    "killed": "☠",
}


@dataclass(slots=True)
class AgentLine:
    agent_id: str
    layer: int
    status: str = "pending"
    turns: int = 0
    searches: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    activity: str = ""


class HeadlessDisplay:
    """Listens to the bus (inline, cheap) and renders a table per refresh, never per event."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.lines: dict[str, AgentLine] = {}
        self.title = ""
        self.spent = 0.0
        self.cap: float | None = None
        self.searches = 0
        self.started = time.monotonic()
        self._live: Live | None = None

    # --- event intake -----------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        agent = self.lines.get(event.agent_id or "")
        if isinstance(event, RunStarted):
            self.title = f"{event.program} · {event.run_id}" + (" · SIMULATED" if event.simulated else "")
            for agent_id, layer, _title in event.agents:
                line = self.lines.setdefault(agent_id, AgentLine(agent_id, layer))
                line.status = event.statuses.get(agent_id, line.status)
            self._log(f"run {event.run_id} started in {event.run_dir}")
        elif isinstance(event, BudgetUpdated):
            self.spent, self.cap, self.searches = event.spent_usd, event.cap_usd, event.searches
        elif agent is None:
            return
        elif isinstance(event, AgentStarted):
            agent.status, agent.activity = "running", "started"
        elif isinstance(event, TextStreamed):
            agent.activity = ("…" + event.text.replace("\n", " ").strip())[-60:]
        elif isinstance(event, SearchIssued):
            agent.activity = f'🔍 "{event.query}"'
        elif isinstance(event, TurnCompleted):
            agent.turns = event.turn or agent.turns
            agent.searches += event.usage.web_search_requests
            agent.cost_usd += event.cost_usd
        elif isinstance(event, RetryScheduled):
            agent.retries += 1
            status = event.status_code or ""
            agent.activity = f"retry {event.attempt}: {event.error_kind} {status} wait {event.wait_s:.1f}s"
            self._log(
                f"{agent.agent_id}: {event.error_kind} ({event.status_code}) {event.request_id or ''} "
                f"attempt {event.attempt}, waiting {event.wait_s:.1f}s"
            )
        elif isinstance(event, ApiErrorRaised):
            self._log(f"{agent.agent_id}: {event.error_kind} ({event.status_code}) {event.message}")
        elif isinstance(event, BudgetCapReached):
            self._log(f"{agent.agent_id}: budget cap reached ({event.cap})")
        elif isinstance(event, AgentPaused):
            agent.status = "paused"
        elif isinstance(event, AgentFinished):
            agent.status = event.status
            self._log(f"{agent.agent_id}: {event.status} after {event.turns} turns, ${event.cost_usd:.4f}")
        elif isinstance(event, AgentFailed):
            agent.status, agent.activity = "failed", event.error[:60]
            self._log(f"{agent.agent_id}: failed: {event.error}")
        elif isinstance(event, AgentKilled):
            agent.status = "killed"
        if isinstance(event, RunFinished):
            self._log(f"run finished: {event.status}, ${event.cost_usd:.4f}")

    def _log(self, line: str) -> None:
        if not self.console.is_terminal:
            self.console.print(line, highlight=False, markup=False)

    # --- rendering --------------------------------------------------------------------------

    def render(self) -> Table:
        elapsed = int(time.monotonic() - self.started)
        cap = f" of ${self.cap:.2f}" if self.cap else ""
        table = Table(
            title=f"{self.title}  {elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}",
            caption=f"${self.spent:.4f} spent{cap} · {self.searches} searches",
            expand=True,
        )
        for column in ("L", "agent", "status", "turn", "searches", "$", "retries"):
            table.add_column(column, no_wrap=True)
        table.add_column("last activity", overflow="ellipsis", no_wrap=True, ratio=1)
        for line in self.lines.values():
            table.add_row(
                str(line.layer),
                line.agent_id,
                f"{GLYPHS.get(line.status, '?')} {line.status}",
                str(line.turns),
                str(line.searches),
                f"{line.cost_usd:.4f}",
                str(line.retries),
                line.activity,
            )
        return table

    def __enter__(self) -> HeadlessDisplay:
        if self.console.is_terminal:
            self._live = Live(get_renderable=self.render, console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        self.console.print(self.render())
