"""The headless front end: a live Rich table on a terminal, log lines elsewhere (CI, pipes, files).

On a terminal the table is redrawn four times a second on standard error, and when the run ends it
gives way to the final table, printed once on standard output. Anywhere else the output follows
common log conventions: one event a line, each starting with an ISO 8601 timestamp, never wrapped
(whatever the width a pipe reports), events on standard error; at the end a summary on standard
output, once, whose last line names the final report.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from core.control import GLYPHS, AgentStatus, RunOutcome
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
from core.safe_text import printable
from core.view import AgentRow, RunView

ACTIVITY_CHARS = 60
_URL = re.compile(r"\(?https?://([^/\s)\]]+)[^\s)\]]*\)?")
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\((?:[^)\s]*)\)?")


def timestamp(at: float | None = None) -> str:
    """ISO 8601 with milliseconds and the local offset: ``2026-11-24T10:02:12.345+01:00``."""
    moment = datetime.fromtimestamp(time.time() if at is None else at).astimezone()
    return moment.isoformat(timespec="milliseconds")


def activity_text(tail: str) -> str:
    """The end of what an agent wrote, readable in a narrow column: links shown as their domain."""
    text = _MARKDOWN_LINK.sub(r"\1", tail)
    text = _URL.sub(lambda match: f"({match.group(1)})", text)
    text = " ".join(printable(text).split())
    if len(text) <= ACTIVITY_CHARS:
        return text
    cut = text[-ACTIVITY_CHARS:]
    space = cut.find(" ")
    return "…" + (cut[space + 1 :] if 0 <= space < ACTIVITY_CHARS // 2 else cut)


def _status(code: int | None) -> str:
    return f"HTTP {code}" if code is not None else "no response"


class HeadlessDisplay:
    """Listens to the bus (inline, cheap) and renders a table per refresh, never per event.

    The rows are the run's :class:`~core.view.RunView`, the same fold ``summary.json`` is written
    from; only the "last activity" column (a display detail) is kept here.
    """

    TAIL_CHARS = 400  # text kept per agent to find the last activity in (links included)
    TABLE_CHROME = 7  # lines of the live table that are not agents: title, borders, header, caption

    def __init__(self, console: Console | None = None, out: Console | None = None) -> None:
        # soft_wrap: a line is never folded at the width a pipe or CI log reports (80 by default)
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.out = out or Console(soft_wrap=True)
        self.view = RunView()
        self.activity: dict[str, str] = {}
        self._tails: dict[str, str] = {}
        self.started = time.monotonic()
        self._live: Live | None = None

    @property
    def live(self) -> bool:
        """A live table (a terminal) rather than log lines."""
        return self.console.is_terminal

    # --- event intake -----------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        self.view.apply(event)
        agent = event.agent_id
        at = event.at
        if isinstance(event, RunStarted):
            verb = "resumed" if event.resumed else "started"
            self._log(at, f"run {event.run_id} {verb} in {event.run_dir}")
        elif isinstance(event, SubscriberFailed):
            self._log(at, f"internal error in {event.subscriber}: {event.message}")
        if agent is None:
            if isinstance(event, RunFinished):
                self._log(at, f"run finished: {event.status}, ${event.cost_usd:.4f}")
            return
        if isinstance(event, AgentStarted):
            self.activity[agent] = "started"
            self._log(at, f"{agent}: started (layer {event.layer})")
        elif isinstance(event, TextStreamed):
            tail = (self._tails.get(agent, "") + event.text)[-self.TAIL_CHARS :]
            self._tails[agent] = tail
            self.activity[agent] = activity_text(tail)
        elif isinstance(event, SearchIssued):
            self.activity[agent] = f'🔍 "{printable(event.query)}"'
        elif isinstance(event, RetryScheduled):
            what = f"{event.error_kind} ({_status(event.status_code)})"
            self.activity[agent] = f"retry {event.attempt}: {what}, wait {event.wait_s:.1f}s"
            request = f", request {event.request_id}" if event.request_id else ""
            self._log(at, f"{agent}: {what}{request}; retry {event.attempt} in {event.wait_s:.1f}s")
        elif isinstance(event, ApiErrorRaised):
            request = f", request {event.request_id}" if event.request_id else ""
            self._log(
                at, f"{agent}: {event.error_kind} ({_status(event.status_code)}){request}: {event.message}"
            )
        elif isinstance(event, BudgetCapReached):
            self._log(at, f"{agent}: budget cap reached ({event.cap})")
        elif isinstance(event, AgentFinished):
            row = self.view.agents[agent]
            self._log(at, f"{agent}: {event.status} after {row.turn} turns, ${row.cost_usd:.4f}")
        elif isinstance(event, AgentFailed):
            self.activity[agent] = activity_text(event.error)
            self._log(at, f"{agent}: failed: {event.error}")
        elif isinstance(event, AgentInterrupted):
            self._log(at, f"{agent}: interrupted (its last completed turn is saved)")

    def _log(self, at: float | None, line: str) -> None:
        if not self.live:
            self._line(self.console, at, line)

    @staticmethod
    def _line(console: Console, at: float | None, line: str) -> None:
        """One log line: a timestamp, then the text on one line (breaks and controls escaped)."""
        text = printable(line.replace("\r\n", "\n").replace("\n", " ⏎ "))
        console.print(f"{timestamp(at)} {text}", highlight=False, markup=False, emoji=False)

    # --- rendering --------------------------------------------------------------------------

    def render(self, *, fit: bool = True) -> Table:
        """The table of agents; with ``fit``, only as many rows as the terminal has room for."""
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
        rows = list(self.view.agents.values())
        shown = self._rows_that_fit(rows) if fit else rows
        for row in shown:
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
        if len(shown) < len(rows):
            on_screen = {row.agent_id for row in shown}
            left = Counter(row.status.value for row in rows if row.agent_id not in on_screen)
            counts = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(left.items()))
            table.add_row("", f"… {len(rows) - len(shown)} more", counts, *[""] * 5)
        return table

    def _rows_that_fit(self, rows: list[AgentRow]) -> list[AgentRow]:
        """All rows if the terminal is tall enough; else the agents at work first (then the finished,
        then the pending), in roster order, so the totals under the table stay on screen."""
        room = self.console.height - self.TABLE_CHROME
        if len(rows) <= room:
            return rows
        pending = AgentStatus.PENDING
        at_work_first = sorted(rows, key=lambda row: (not row.status.is_active, row.status is pending))
        kept = {row.agent_id for row in at_work_first[: max(1, room - 1)]}
        return [row for row in rows if row.agent_id in kept]

    def summary_lines(self) -> list[str]:
        """The end of a run as log lines: the run's totals, then one line per agent."""
        run = self.view.run
        lines = [
            f"summary: run {run.run_id} {run.status}, ${self.view.spent_usd:.4f} spent, "
            f"{self.view.searches} searches, {len(self.view.agents)} agents"
        ]
        for row in self.view.agents.values():
            lines.append(
                f"summary: {row.agent_id} (layer {row.layer}) {row.status.value}, {row.turn} turns, "
                f"{row.searches} searches, ${row.cost_usd:.4f}, {row.retries} retries"
            )
        return lines

    def finish(self, outcome: RunOutcome) -> None:
        """The run's end, once on standard output: the table (or summary lines), the outcome, the report."""
        report = self.view.run.report_path or str(outcome.run_dir / "report.md")
        closing = [outcome.describe()]
        if outcome.message and self.live:
            print(printable(outcome.message, keep_newlines=True), file=sys.stderr)
        elif outcome.message:
            self._line(self.console, None, outcome.message)
        closing.append(f"report: {report}" if Path(report).is_file() else f"no final report yet ({report})")
        if self.live:
            self.out.print(self.render(fit=False))  # the whole roster, once, on standard output
            for line in closing:
                self.out.print(line, highlight=False, markup=False)
            return
        for line in [*self.summary_lines(), *closing]:
            self._line(self.out, None, line)

    def __enter__(self) -> HeadlessDisplay:
        if self.live:  # transient: the final table is printed once, by ``finish``
            self._live = Live(
                get_renderable=self.render, console=self.console, refresh_per_second=4, transient=True
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
