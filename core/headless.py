"""The headless front end: a live Rich table on a terminal, log lines elsewhere (CI, pipes, files).

On a terminal the table is redrawn four times a second on standard error, and when the run ends it
gives way to the final table, printed once on standard output. Anywhere else the output follows
common log conventions: one event a line, each starting with an ISO 8601 timestamp, never wrapped
(whatever the width a pipe reports), events on standard error; at the end a summary on standard
output, once, whose last line names the final report. With only standard output redirected
(``run --headless > log`` from a terminal) the table stays on the terminal and the file gets the
log: the event lines and the summary, never a table drawn for a terminal.
"""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import assert_never

from rich.console import Console
from rich.live import Live
from rich.table import Table

from core import events as ev
from core.control import GLYPHS, RunOutcome
from core.safe_text import printable
from core.status import AgentStatus
from core.usage import money_text
from core.view import AgentRow, RunView, incident_of

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


def stopping_line(event: ev.RunStopping, now: float) -> str:
    """What a stop is doing, in one line: the calls it waits for and the time left, or what it cancels."""
    calls = len(event.in_flight)
    plural = "call" if calls == 1 else "calls"
    if event.now:
        if not calls:
            return "stopping now: no call was in flight"
        return (
            f"stopping now: {calls} {plural} in flight cancelled ({', '.join(event.in_flight)}), "
            f"each charged its worst case: up to ${event.worst_case_usd:.4f}"
        )
    if not calls:
        return "stopping: no call in flight; every completed turn is saved"
    left = max(0.0, (event.deadline or now) - now)
    return (
        f"stopping: no new call starts; {calls} {plural} in flight finish their turn and are saved "
        f"({', '.join(event.in_flight)}; {left:.0f} s left). Interrupt again to stop now "
        f"(counts up to ${event.worst_case_usd:.4f} for them)"
    )


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

    @property
    def table_out(self) -> bool:
        """The final table goes to standard output: a terminal, as the live table was."""
        return self.live and self.out.is_terminal

    @property
    def log_console(self) -> Console | None:
        """Where event lines go: standard error without a terminal; standard output when only it is
        redirected (the file gets the log, the terminal the table); nowhere when both are terminals."""
        if not self.live:
            return self.console
        return None if self.out.is_terminal else self.out

    # --- event intake -----------------------------------------------------------------------

    def __call__(self, event: ev.Event) -> None:
        self.view.apply(event)
        agent = event.agent_id or ""
        at = event.at
        match event:
            case ev.TextStreamed():
                if event.agent_id is not None:
                    tail = (self._tails.get(agent, "") + event.text)[-self.TAIL_CHARS :]
                    self._tails[agent] = tail
                    self.activity[agent] = activity_text(tail)
            case ev.RunStarted():
                verb = "resumed" if event.resumed else "started"
                self._log(at, f"run {event.run_id} {verb} in {event.run_dir}")
            case ev.SubscriberFailed():
                self._log(at, f"internal error in {event.subscriber}: {event.message}")
            case ev.RunFinished():
                if event.agent_id is None:
                    split = money_text(event.cost_usd, self.view.unconfirmed)
                    self._log(at, f"run finished: {event.status.value}, ${event.cost_usd:.4f} ({split})")
            case ev.AgentStarted():
                self.activity[agent] = "started"
                self._log(at, f"{agent}: started (layer {event.layer})")
            case ev.SearchIssued():
                self.activity[agent] = f'🔍 "{printable(event.query)}"'
            case ev.RetryScheduled():
                what = f"{event.error_kind} ({_status(event.status_code)})"
                self.activity[agent] = f"retry {event.attempt}: {what}, wait {event.wait_s:.1f}s"
                request = f", request {event.request_id}" if event.request_id else ""
                self._log(at, f"{agent}: {what}{request}; retry {event.attempt} in {event.wait_s:.1f}s")
            case ev.ApiErrorRaised():
                request = f", request {event.request_id}" if event.request_id else ""
                self._log(
                    at,
                    f"{agent}: {event.error_kind} ({_status(event.status_code)}){request}: {event.message}",
                )
            case ev.BudgetCapReached():
                self._log(at, f"{agent}: budget cap reached ({event.cap})")
            case ev.AgentFinished():
                row = self.view.agents.get(agent) or AgentRow(
                    agent, event.layer or 0, cost_usd=event.cost_usd
                )
                split = money_text(row.cost_usd, row.unconfirmed)
                self._log(
                    at, f"{agent}: {event.status.value} after {row.turn} turns, ${row.cost_usd:.4f} ({split})"
                )
            case ev.AttemptCharged():
                incident = incident_of(event)
                if incident is not None:
                    kind = "billed" if event.billed else "unconfirmed"
                    self._log(at, f"{agent}: {incident.message}, {kind}")
            case ev.AgentFailed():
                self.activity[agent] = activity_text(event.error)
                self._log(at, f"{agent}: failed: {event.error}")
            case ev.AgentSkipped():
                self.activity[agent] = activity_text(event.reason)
                self._log(at, f"{agent}: skipped: {event.reason}")
            case ev.AgentInterrupted():
                self._log(at, f"{agent}: interrupted (its last completed turn is saved)")
            case ev.RunStopping():
                self._log(at, stopping_line(event, at))
            case ev.BatchSubmitted():
                requests = f"{event.requests} requests"
                self._log(at, f"layer {event.layer}: batch {event.batch_id} submitted ({requests})")
            case ev.BatchEnded():
                line = self.view.batches.get(event.batch_id)
                self._log(at, line.text(at) if line is not None else f"batch {event.batch_id} ended")
            case (
                ev.LayerStarted()
                | ev.LayerFinished()
                | ev.AttemptAbandoned()
                | ev.SearchResultsReceived()
                | ev.CitationReceived()
                | ev.TurnCompleted()
                | ev.AgentPausing()
                | ev.AgentPaused()
                | ev.AgentResumed()
                | ev.AgentBudgetWaitStarted()
                | ev.AgentBudgetWaitEnded()
                | ev.AgentKilled()
                | ev.StopReasonUnhandled()
                | ev.ContextCompacted()
                | ev.BudgetUpdated()
                | ev.CheckpointSaved()
                | ev.DiskErrorRaised()
                | ev.IncidentsRecalled()
                | ev.BatchProgress()
                | ev.AgentBatched()
            ):
                pass  # (shown by the table, from the view)
            case _:
                assert_never(event)

    def note(self, line: str) -> None:
        """A line of the front end's own (not an event), where event lines go."""
        self._log(None, line)

    def _log(self, at: float | None, line: str) -> None:
        console = self.log_console
        if console is not None:
            self._line(console, at, line)

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
        reserved = f" · ${budget.reserved_usd:.4f} reserved" if budget is not None else ""
        unconfirmed = self.view.unconfirmed
        stop = self._stop_note()
        now = time.time()
        batches = "".join(f"\n{line.text(now)}" for line in self.view.live_batches)
        table = Table(
            title=f"{title}  {elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}",
            caption=f"${self.view.spent_usd:.4f} spent{cap} ({money_text(self.view.spent_usd, unconfirmed)})"
            f"{reserved} · {self.view.searches} searches ({unconfirmed.searches} unconfirmed){stop}{batches}",
            expand=True,
        )
        for column in ("L", "agent", "status", "turn", "searches", "billed $", "unconfirmed $", "retries"):
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
                f"{row.billed_usd:.4f}",
                f"{row.unconfirmed_usd:.4f}" if row.unconfirmed_attempts else "",
                str(row.retries),
                row.note or self.activity.get(row.agent_id, ""),
            )
        if len(shown) < len(rows):
            on_screen = {row.agent_id for row in shown}
            left = Counter(row.status.value for row in rows if row.agent_id not in on_screen)
            counts = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(left.items()))
            table.add_row("", f"… {len(rows) - len(shown)} more", counts, *[""] * 6)
        return table

    def _stop_note(self) -> str:
        """The countdown of a clean stop, under the live table."""
        stopping = self.view.run.stopping
        left = self.view.run.stop_left_s(time.time())
        if stopping is None or left is None:
            return ""
        calls = len(stopping.in_flight)
        return f" · stopping: {calls} call(s) in flight, {left:.0f} s left (interrupt again: now)"

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
        unconfirmed = self.view.unconfirmed
        lines = [
            f"summary: run {run.run_id} {run.status}, ${self.view.spent_usd:.4f} spent, "
            f"{self.view.searches} searches, {len(self.view.agents)} agents; "
            f"{money_text(self.view.spent_usd, unconfirmed)}, {unconfirmed.searches} searches unconfirmed"
        ]
        for row in self.view.agents.values():
            lines.append(
                f"summary: {row.agent_id} (layer {row.layer}) {row.status.value}, {row.turn} turns, "
                f"{row.searches} searches, ${row.cost_usd:.4f}, {row.retries} retries; "
                f"{money_text(row.cost_usd, row.unconfirmed)}, "
                f"{row.unconfirmed_searches} searches unconfirmed"
            )
        return lines

    def finish(self, outcome: RunOutcome) -> None:
        """The run's end, once on standard output: the table (or summary lines), the outcome, the report."""
        report = self.view.run.report_path or str(outcome.run_dir / "report.md")
        closing = [outcome.describe()]
        if outcome.message and self.live:
            print(printable(outcome.message, keep_newlines=True), file=sys.stderr)
        if outcome.message and self.log_console is not None:
            self._line(self.log_console, None, outcome.message)
        closing.append(f"report: {report}" if Path(report).is_file() else f"no final report yet ({report})")
        if self.table_out:
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
