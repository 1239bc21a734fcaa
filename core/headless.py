"""The headless front end: a live Rich table on a terminal, plain log lines elsewhere (CI, pipes)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from core.control import GLYPHS
from core.events import (
    AgentFailed,
    AgentFinished,
    AgentInterrupted,
    AgentStarted,
    ApiErrorRaised,
    BudgetCapReached,
    Event,
    RetryScheduled,
    RunFinished,
    RunStarted,
    SearchIssued,
    SubscriberFailed,
    TextStreamed,
)
from core.view import RunView


class HeadlessDisplay:
    """Listens to the bus (inline, cheap) and renders a table per refresh, never per event.

    The rows are the run's :class:`~core.view.RunView`, the same fold ``summary.json`` is written
    from; only the "last activity" column (a display detail) is kept here.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.view = RunView()
        self.activity: dict[str, str] = {}
        self.started = time.monotonic()
        self._live: Live | None = None

    # --- event intake -----------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        agent = event.agent_id
        if isinstance(event, RunStarted):
            verb = "resumed" if event.resumed else "started"
            self._log(f"run {event.run_id} {verb} in {event.run_dir}")
        elif isinstance(event, SubscriberFailed):
            self._log(f"internal error in {event.subscriber}: {event.message}")
        if agent is None:
            if isinstance(event, RunFinished):
                self._log(f"run finished: {event.status}, ${event.cost_usd:.4f}")
            return
        if isinstance(event, AgentStarted):
            self.activity[agent] = "started"
        elif isinstance(event, TextStreamed):
            self.activity[agent] = ("…" + event.text.replace("\n", " ").strip())[-60:]
        elif isinstance(event, SearchIssued):
            self.activity[agent] = f'🔍 "{event.query}"'
        elif isinstance(event, RetryScheduled):
            status = event.status_code or ""
            self.activity[agent] = (
                f"retry {event.attempt}: {event.error_kind} {status} wait {event.wait_s:.1f}s"
            )
            self._log(
                f"{agent}: {event.error_kind} ({event.status_code}) {event.request_id or ''} "
                f"attempt {event.attempt}, waiting {event.wait_s:.1f}s"
            )
        elif isinstance(event, ApiErrorRaised):
            self._log(f"{agent}: {event.error_kind} ({event.status_code}) {event.message}")
        elif isinstance(event, BudgetCapReached):
            self._log(f"{agent}: budget cap reached ({event.cap})")
        elif isinstance(event, AgentFinished):
            row = self.view.agents[agent]
            self._log(f"{agent}: {event.status} after {row.turn} turns, ${row.cost_usd:.4f}")
        elif isinstance(event, AgentFailed):
            self.activity[agent] = event.error[:60]
            self._log(f"{agent}: failed: {event.error}")
        elif isinstance(event, AgentInterrupted):
            self._log(f"{agent}: interrupted (its last completed turn is saved)")

    def _log(self, line: str) -> None:
        if not self.console.is_terminal:
            self.console.print(line, highlight=False, markup=False)

    # --- rendering --------------------------------------------------------------------------

    def render(self) -> Table:
        elapsed = int(time.monotonic() - self.started)
        run, budget = self.view.run, self.view.budget
        title = f"{run.program} · {run.run_id}" + (" · SIMULATED" if run.simulated else "")
        cap = f" of ${budget.cap_usd:.2f}" if budget is not None and budget.cap_usd else ""
        table = Table(
            title=f"{title}  {elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}",
            caption=f"${self.view.spent_usd:.4f} spent{cap} · {self.view.searches} searches",
            expand=True,
        )
        for column in ("L", "agent", "status", "turn", "searches", "$", "retries"):
            table.add_column(column, no_wrap=True)
        table.add_column("last activity", overflow="ellipsis", no_wrap=True, ratio=1)
        for row in self.view.agents.values():
            table.add_row(
                str(row.layer),
                row.agent_id,
                f"{GLYPHS[row.status]} {row.status.value}",
                str(row.turn),
                str(row.searches),
                f"{row.cost_usd:.4f}",
                str(row.retries),
                row.note or self.activity.get(row.agent_id, ""),
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
