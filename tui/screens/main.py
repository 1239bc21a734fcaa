"""The main screen of a run: agents, live panes of the running agents, budget, retries, header.

It holds no run state of its own beyond what its widgets show: the bridge's messages carry
current values, and actions call the run's control (pause, resume, kill), never core internals.

Under load (20 agents at 200 tokens a second) the screen must leave the event loop free for keys:
streamed text reaches each running agent's feed without a message per fragment (the bridge calls
:meth:`MainScreen.stream_text` and friends; feeds are found in a dict, not a DOM query); all dirty
feeds flush together about ten times a second; counters in the table and pane borders (turns,
searches, dollars) repaint at most four times a second, while a change of status shows at once.

With more running agents than fit (a layer of 100, a small terminal) the screen keeps a fixed set
of pane widgets, as many as fit, bound to the selected agent and the most active ones: selecting
another agent rebinds a pane (a repaint) instead of showing and hiding mounted panes (a layout of
the whole screen each time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Static

from core.control import GLYPHS, AgentStatus, RunControl
from core.persistence.rundir import RunDir
from core.remote.attached import AttachedRun
from core.view import AgentRow, RunInfo
from tui import messages as msg
from tui.coalesce import Coalescer, Throttle
from tui.data import Document, RunSource, agent_report_path, run_documents
from tui.feed import AgentFeed
from tui.format import plural
from tui.screens.checkpoints import CheckpointBrowserScreen
from tui.screens.choice import Choice, ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.incident import IncidentScreen
from tui.widgets.agent_pane import AgentPane
from tui.widgets.agent_table import AgentTable
from tui.widgets.budget_meter import BudgetMeter
from tui.widgets.retry_log import RetryLog
from tui.widgets.run_header import RunHeader

PaletteCommand = tuple[str, str, Callable[[], object]]
_Early = tuple[str, str | bool]  # ("text" | "note", text) or ("end", continues): before a pane exists


def glyph_legend() -> tuple[str, str]:
    """The status glyphs and what each means, from the one glyph table (``core.control.GLYPHS``)."""
    names: dict[str, str] = {}
    for status, glyph in GLYPHS.items():
        names[glyph] = status.value.replace("_", " ")  # a shared glyph reads as its later status
    return " ".join(names), ", ".join(names.values())


def outcome_text(message: msg.RunEnded) -> str:
    """What the pane area says once the run is over: how it ended, what it cost, where the report is."""
    if message.outcome is None:
        return f"The run failed: {message.error or 'unknown error'}"
    outcome = message.outcome
    lines = [f"Run {outcome.status.value.replace('_', ' ')} · ${outcome.cost_usd:,.2f}"]
    if outcome.message:
        lines.append(outcome.message)
    report = RunDir(outcome.run_dir).final_report_path
    if report.is_file():
        lines.append(f"Report: {report}   (r opens it)")
    return "\n".join(lines)


def pane_columns(width: int) -> int:
    """1 to 3 columns of panes, each at least ~45 cells wide."""
    return 1 if width < 90 else 2 if width < 140 else 3


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding(
            "p",
            "pause_resume",
            "Pause",
            id="pause-resume",
            tooltip="pause or resume the selected agent (after its turn in flight)",
        ),
        Binding("k", "kill", "Kill", id="kill", tooltip="kill the selected agent (asks first)"),
        Binding("enter", "focus_pane", "Focus", id="focus-pane", tooltip="focus the selected agent's pane"),
        Binding(
            "f",
            "maximize_pane",
            "Max",
            id="maximize",
            tooltip="maximize the selected agent's pane (esc restores)",
        ),
        Binding(
            "c",
            "checkpoints",
            "Checkpoints",
            id="checkpoints",
            tooltip="checkpoints: resume or fork from one",
        ),
        Binding(
            "r",
            "report",
            "Report",
            id="report",
            tooltip="the agent's report; once the run has ended, the final report",
        ),
        Binding(
            "l",
            "retry_log",
            "Log",
            id="retry-log",
            show=False,
            tooltip="the retry and error log (enter: one line in full)",
        ),
        Binding("o", "runs", "Runs", id="runs", tooltip="the runs in the runs directory"),
        Binding("t", "app.change_theme", "Theme", id="theme", tooltip="choose a theme (remembered)"),
        Binding("question_mark", "app.help", "Help", id="help", key_display="?", tooltip="this help"),
        Binding(
            "escape",
            "unfocus",
            "Back",
            show=False,
            id="unfocus",
            tooltip="back to the agent list (restores a pane)",
        ),
    ]
    HELP_TITLE = "Keys on the run screen"
    HELP_KEYS = (
        ("↑ ↓ home end", "select an agent in the list (its pane is shown)"),
        ("tab", "move between the list, the panes and the log"),
    )
    HELP_LEGEND = (
        ("L1 ● market", "layer 1, status, agent id"),
        ("t8", "turn 8: API calls completed (max_turns counts prompts; a continued answer takes more)"),
        ("17s", "17 web searches"),
        ("$0.39", "dollars this agent has spent"),
        ("0r", "retries of its API calls"),
        glyph_legend(),
    )
    ESCAPE_TO_MINIMIZE = False  # esc is ``action_unfocus``: restore *and* give the keys back to the table
    MIN_PANE_HEIGHT = 8
    SWAP_DELAY = 0.12  # seconds the selection rests on a hidden agent before its pane is shown
    ROTATE_INTERVAL = 3.0  # seconds between checks for a hidden pane that became active
    COUNTERS_INTERVAL = 0.25  # turns, searches and dollars in the table and pane borders
    FLUSH_INTERVAL = 0.1  # streamed text reaches the panes about ten times a second
    EARLY_LIMIT = 2000  # items kept for an agent whose pane is not there yet

    def __init__(
        self, control: RunControl, *, runs_dir: Path, source: RunSource, clock: Callable[[], float]
    ) -> None:
        super().__init__()
        self.control = control
        self.runs_dir = runs_dir
        self.source = source
        self.clock = clock
        self.info = RunInfo(run_id=control.run_id, run_dir=str(control.run_dir))
        self.run_active = True
        owner = control.owner_pid if isinstance(control, AttachedRun) else None
        attached = None
        if isinstance(control, AttachedRun):
            attached = f"attached · owner pid {owner}" if owner else "attached"
        self.header = RunHeader(self.info, clock=self.clock, attached=attached, id="header")
        self.table = AgentTable(id="agent-table")
        self.meter = BudgetMeter(id="budget")
        self.retry_log = RetryLog(id="retries")
        self._feeds: dict[str, AgentFeed] = {}  # every running agent's, in roster order
        self._slots: list[AgentPane] = []  # the pane widgets, as many as fit
        self._early: dict[str, list[_Early]] = {}
        self._flusher = Coalescer(self, self.FLUSH_INTERVAL)
        self._pending_rows: dict[str, AgentRow] = {}
        self._counters = Throttle(self, self.COUNTERS_INTERVAL, self._show_pending_rows)
        self._activity: dict[str, float] = {}  # agent -> monotonic time of its last streamed item
        self._layout_pending = False
        self._swap_timer: Timer | None = None

    # --- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.header
        with Container(id="body"):
            with Vertical(id="agents"):
                yield self.table
            with Container(id="panes"):
                yield Static("Waiting for agents to start…", id="no-panes")
            with Container(id="bottom"):
                yield self.meter
                yield self.retry_log
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p is in help; ^q must fit 80 columns

    def on_mount(self) -> None:
        self.query_one("#agents").border_title = "Agents"
        self.table.focus()
        self.set_interval(self.ROTATE_INTERVAL, self.rotate_panes)

    @property
    def feeds(self) -> dict[str, AgentFeed]:
        """The running agents' feeds by agent id (a copy)."""
        return dict(self._feeds)

    def feed(self, agent_id: str) -> AgentFeed | None:
        return self._feeds.get(agent_id)

    def pane(self, agent_id: str) -> AgentPane | None:
        """The pane showing ``agent_id``, if one does."""
        feed = self._feeds.get(agent_id)
        watcher = feed.watcher if feed is not None else None
        return watcher if isinstance(watcher, AgentPane) else None

    def on_resize(self) -> None:
        self._layout_panes()

    def pane_slots(self) -> int:
        """How many panes fit the pane area at their minimum height (none before it has a size)."""
        grid = self.query_one("#panes", Container)
        if not grid.size.height or not grid.size.width:
            return 0
        return pane_columns(grid.size.width) * max(1, grid.size.height // self.MIN_PANE_HEIGHT)

    def shown_panes(self) -> list[AgentPane]:
        """The panes on screen, each bound to an agent."""
        return [pane for pane in self._slots if pane.feed is not None]

    def _chosen(self, slots: int) -> list[str]:
        """The agents worth a pane: the selected one, then the most recently active, in roster order.

        An agent shown keeps its pane while it streams: panes change only for quiet ones.
        """
        if len(self._feeds) <= slots:
            return list(self._feeds)
        selected = self.selected_agent
        shown = {pane.agent_id for pane in self._slots}
        now, recent, activity = time.monotonic(), self.ROTATE_INTERVAL, self._activity
        ranked = sorted(
            self._feeds,
            key=lambda agent: (
                agent != selected,
                not (agent in shown and now - activity.get(agent, -math.inf) < recent),
                -activity.get(agent, -math.inf),
            ),
        )
        chosen = set(ranked[:slots])
        return [agent for agent in self._feeds if agent in chosen]

    def _layout_panes(self) -> None:
        """As many panes as fit (and are needed), bound to the chosen agents; a pane already showing
        a chosen agent keeps it, so only the panes whose agent changed repaint."""
        self.query_one("#no-panes").display = not self._feeds
        slots = self.pane_slots()
        if not slots and self._feeds:
            self._schedule_layout()  # the pane area has no size yet: once it has
        wanted = min(slots, len(self._feeds))
        chosen = self._chosen(wanted)
        grid = self.query_one("#panes", Container)
        while len(self._slots) > wanted:
            self._slots.pop().remove()
        kept = {pane.agent_id: pane for pane in self._slots if pane.agent_id in chosen}
        free = [pane for pane in self._slots if pane.agent_id not in kept]
        added: list[AgentPane] = []
        with self.app.batch_update():
            for agent in chosen:
                if agent in kept:
                    continue
                if free:
                    free.pop(0).bind(self._feeds[agent])
                else:
                    added.append(AgentPane(self._feeds[agent]))
            if added:
                self._slots.extend(added)
                grid.mount_all(added)
        columns = max(1, min(wanted, pane_columns(grid.size.width or self.size.width)))
        if grid.styles.grid_size_columns != columns:
            grid.styles.grid_size_columns = columns
        hidden = len(self._feeds) - wanted
        subtitle = f"{plural(hidden, 'pane')} hidden: select to show" if hidden > 0 else ""
        agents = self.query_one("#agents")
        if agents.border_subtitle != subtitle:
            agents.border_subtitle = subtitle

    def _schedule_layout(self) -> None:
        if not self._layout_pending:
            self._layout_pending = True
            self.call_after_refresh(self._layout_now)

    def _layout_now(self) -> None:
        self._layout_pending = False
        self._layout_panes()

    def rotate_panes(self) -> None:
        """Every few seconds the panes follow activity (and a first layout made before the pane
        area had its size is made again)."""
        shown = [pane.agent_id for pane in self._slots]
        if len(shown) != min(self.pane_slots(), len(self._feeds)) or set(shown) != set(
            self._chosen(len(shown))
        ):
            self._layout_panes()

    @on(AgentTable.RowHighlighted)
    def _agent_highlighted(self, _event: AgentTable.RowHighlighted) -> None:
        """An agent without a pane gets one once the selection rests (keys held down move the cursor
        at once, without rebinding a pane per row passed)."""
        agent = self.table.selected_agent or ""
        if agent not in self._feeds or self.pane(agent) is not None:
            return
        if self._swap_timer is not None:
            self._swap_timer.stop()
        self._swap_timer = self.set_timer(self.SWAP_DELAY, self._layout_panes)

    # --- messages from the bridge ----------------------------------------------------------------

    def on_run_info_changed(self, message: msg.RunInfoChanged) -> None:
        self.info = message.info
        self.header.show(message.info)

    def on_agents_listed(self, message: msg.AgentsListed) -> None:
        self._pending_rows.clear()
        self.table.set_rows(message.rows)
        for row in message.rows:
            self._sync_feed(row)

    def on_agent_row_changed(self, message: msg.AgentRowChanged) -> None:
        row = message.row
        shown = self.table.rows_by_id.get(row.agent_id)
        if shown is not None and shown.status == row.status:
            self._pending_rows[row.agent_id] = row  # only counters changed: latest value wins
            self._counters.poke()
            return
        self._pending_rows.pop(row.agent_id, None)
        self.table.show_row(row)
        self._sync_feed(row)

    def _show_pending_rows(self) -> None:
        rows, self._pending_rows = self._pending_rows, {}
        if not rows:
            return
        with self.app.batch_update():
            for row in rows.values():
                self.table.show_row(row)
                feed = self._feeds.get(row.agent_id)
                if feed is not None:
                    feed.show_row(row)

    def _sync_feed(self, row: AgentRow) -> None:
        feed = self._feeds.get(row.agent_id)
        if feed is not None:
            feed.show_row(row)
        elif row.status.is_active:
            feed = self._feeds[row.agent_id] = AgentFeed(row, self._flusher)
            for kind, value in self._early.pop(row.agent_id, ()):
                self._route(feed, kind, value)
            self._schedule_layout()  # a layer of 100 agents starting: one layout, not one per agent
        elif row.status.is_final:
            self._early.pop(row.agent_id, None)

    # --- the stream: called by the bridge for every fragment (no message per token) ------------

    def stream_text(self, agent_id: str, text: str) -> None:
        self._stream(agent_id, "text", text)

    def stream_note(self, agent_id: str, text: str) -> None:
        self._stream(agent_id, "note", text)

    def stream_turn_ended(self, agent_id: str, continues: bool) -> None:
        self._stream(agent_id, "end", continues)

    def _stream(self, agent_id: str, kind: str, value: str | bool) -> None:
        self._activity[agent_id] = time.monotonic()
        feed = self._feeds.get(agent_id)
        if feed is not None:
            self._route(feed, kind, value)
            return
        early = self._early.setdefault(agent_id, [])  # its row change is still in the queue
        if len(early) < self.EARLY_LIMIT:
            early.append((kind, value))

    @staticmethod
    def _route(feed: AgentFeed, kind: str, value: str | bool) -> None:
        if kind == "text":
            feed.append_text(str(value))
        elif kind == "note":
            feed.add_note(str(value))
        else:
            feed.end_turn(paragraph=not value)

    def on_agent_text_streamed(self, message: msg.AgentTextStreamed) -> None:
        self.stream_text(message.agent_id, message.text)

    def on_agent_noted(self, message: msg.AgentNoted) -> None:
        self.stream_note(message.agent_id, message.text)

    def on_agent_turn_ended(self, message: msg.AgentTurnEnded) -> None:
        self.stream_turn_ended(message.agent_id, message.continues)

    def on_budget_changed(self, message: msg.BudgetChanged) -> None:
        self.meter.update_budget(message.budget)

    def on_incident_logged(self, message: msg.IncidentLogged) -> None:
        self.retry_log.log_incident(message.incident)

    def on_retry_log_details_requested(self, message: RetryLog.DetailsRequested) -> None:
        self.app.push_screen(IncidentScreen(message.incident))

    def on_layer_finished(self, _message: msg.LayerFinished) -> None:
        """Finished agents give their place to the next layer's."""
        self._counters.fire()
        for feed in [feed for feed in self._feeds.values() if feed.row.status.is_final]:
            feed.flush()
            feed.close()
            del self._feeds[feed.agent_id]
        self._layout_panes()

    def on_run_ended(self, message: msg.RunEnded) -> None:
        self.run_active = False
        self._counters.fire()
        self.meter.run_ended()
        for feed in self._feeds.values():
            feed.end_turn()
        self.query_one("#no-panes", Static).update(outcome_text(message))
        if message.error is not None:
            self.notify(message.error, title="The run failed", severity="error", markup=False, timeout=15)
        elif message.outcome is not None:
            outcome = message.outcome
            text = f"{outcome.status.value.replace('_', ' ')} · ${outcome.cost_usd:,.2f}"
            if outcome.message:
                text += f"\n{outcome.message}"
            self.notify(
                text,
                title="Run finished",
                markup=False,
                timeout=10,
                severity="information" if outcome.exit_code == 0 else "warning",
            )

    # --- selection and actions -----------------------------------------------------------------

    @property
    def selected_agent(self) -> str | None:
        """The agent whose pane has focus, else the one under the table's cursor."""
        node: Widget | None = self.focused
        while node is not None:
            if isinstance(node, AgentPane):
                return node.agent_id
            node = node.parent if isinstance(node.parent, Widget) else None
        return self.table.selected_agent

    def action_retry_log(self) -> None:
        if not self.retry_log.entries:
            self.notify("No retries or errors so far.", severity="information")
            return
        self.retry_log.focus()

    @on(AgentTable.RowSelected)
    def _row_selected(self, _event: AgentTable.RowSelected) -> None:
        self.action_focus_pane()

    def _selected_or_warn(self) -> str | None:
        agent = self.selected_agent
        if agent is None:
            self.notify("No agent selected.", severity="warning")
        return agent

    def action_pause_resume(self) -> None:
        agent = self._selected_or_warn()
        if agent is None:
            return
        status = self.control.agent_status(agent)
        if status.is_final:
            self.notify(f"{agent} has already finished ({status.value}).", severity="warning")
            return
        started = self._has_started(agent)
        if status in (AgentStatus.PAUSED, AgentStatus.PAUSING):
            done, verb = self.control.resume(agent), "resume"
            if done and not started:
                self.notify(f"{agent} will start normally when its layer begins.")
        else:
            done, verb = self.control.pause(agent), "pause"
            if done and not started:
                self.notify(f"{agent} has not started yet: it will start paused (p again undoes this).")
        if not done:
            self.notify(f"Could not {verb} {agent} now ({status.value}).", severity="warning")

    def _has_started(self, agent: str) -> bool:
        row = self.table.rows_by_id.get(agent)
        return row is not None and row.started

    def action_kill(self) -> None:
        agent = self._selected_or_warn()
        if agent is None:
            return
        status = self.control.agent_status(agent)
        if status.is_final:
            self.notify(f"{agent} has already finished.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and not self.control.kill(agent):
                self.notify(f"Could not kill {agent}.", severity="warning")

        def chose(choice: str | None) -> None:
            if choice not in ("after", "now"):
                return
            if not self.control.kill(agent, now=choice == "now"):
                self.notify(f"Could not kill {agent}.", severity="warning")
            elif choice == "after":
                self.notify(f"{agent} is killed once its call in flight has finished and been saved.")

        final = "The agent cannot be resumed in this run."
        if not self._has_started(agent) or status is AgentStatus.PAUSED:
            if not self._has_started(agent):
                what = "It has not started: it will not run, and writes no report."
            else:
                what = "It is paused (no call in flight); its report so far is kept as a partial report."
            self.app.push_screen(
                ConfirmScreen(f"Kill agent {agent}?", f"{what} {final}", yes="Kill", danger=True), answered
            )
            return
        worst = self.control.in_flight_usd(agent)
        amount = "its worst case" if worst is None else f"its worst case, up to ${worst:.2f}"
        self.app.push_screen(
            ChoiceScreen(
                f"Kill agent {agent}?",
                "After its call: the API call in flight finishes its turn and is saved, then the agent "
                "ends before its next call.\n"
                "Now: the call in flight is cancelled; the API bills it anyway, so it is charged "
                f"{amount}.\nEither way what it wrote is kept as a partial report. {final}",
                [
                    Choice("y", "Kill after its call", "after", "error"),
                    Choice("x", "Kill now", "now", "error"),
                    Choice("n", "Keep it", "cancel"),
                ],
                focus="cancel",
            ),
            chose,
        )

    def action_focus_pane(self) -> None:
        agent = self.table.selected_agent
        pane = self.pane(agent) if agent else None
        if pane is None:
            self.notify(f"{agent} has no live pane (it is not running).", severity="information")
            return
        pane.view.focus()

    def action_maximize_pane(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        agent = self.selected_agent
        pane = self.pane(agent) if agent else None
        if pane is None:
            self.notify("The selected agent has no live pane.", severity="information")
            return
        self.maximize(pane, container=False)
        pane.view.focus()

    def action_unfocus(self) -> None:
        if self.maximized is not None:
            self.minimize()
        pane_agent = self.selected_agent if not self.table.has_focus else None
        if pane_agent is not None:
            self.table.select_agent(pane_agent)
        self.table.focus()

    def action_checkpoints(self) -> None:
        self.app.push_screen(
            CheckpointBrowserScreen(
                self.runs_dir, self.source, run_id=self.control.run_id, agent_id=self.selected_agent
            )
        )

    def action_report(self) -> None:
        from tui.screens.report import ReportViewer  # here: Markdown loads markdown_it (~50 ms)

        run_dir = Path(self.control.run_dir)
        documents = run_documents(run_dir)
        if not self.run_active and RunDir(run_dir).final_report_path.is_file():
            # what the end of the run points at ("r opens it"): the run's documents, the final report first
            self.app.push_screen(ReportViewer(f"run {self.control.run_id}", documents))
            return
        agent = self.selected_agent
        row = self.table.rows_by_id.get(agent or "")
        path = Path(row.report_path) if row is not None and row.report_path else None
        if path is None and agent is not None and agent_report_path(run_dir, agent).is_file():
            path = agent_report_path(run_dir, agent)
        if path is not None:
            documents = [Document(agent or path.stem, path)] + [d for d in documents if d.path != path]
        elif agent is not None:
            self.notify(f"{agent} has no report yet; showing the run's documents.", severity="information")
        self.app.push_screen(ReportViewer(f"run {self.control.run_id}", documents))

    def action_runs(self) -> None:
        from tui.screens.runs import RunsScreen

        config = getattr(self.app, "config_path", None)
        self.app.push_screen(RunsScreen(self.runs_dir, self.source, config_path=config))

    def palette_commands(self) -> list[PaletteCommand]:
        selected = self.selected_agent
        agent = selected or "the selected agent"
        commands: list[PaletteCommand] = []
        if self.run_active and (selected is None or not self.control.agent_status(selected).is_final):
            commands += [  # an agent that has finished can be neither paused nor killed
                (
                    f"Pause or resume {agent}",
                    "p: pause after the turn in flight, or resume",
                    self.action_pause_resume,
                ),
                (
                    f"Kill {agent}",
                    "k: cancel its call in flight, keep a partial report (asks first)",
                    self.action_kill,
                ),
            ]
        commands += [
            (f"Focus the pane of {agent}", "enter", self.action_focus_pane),
            (f"Maximize the pane of {agent}", "f (esc restores)", self.action_maximize_pane),
            ("Checkpoints", "c: browse checkpoints, resume or fork from one", self.action_checkpoints),
            (
                "The final report" if not self.run_active else f"Report of {agent}",
                "r: the agent's report; once the run has ended, the final report",
                self.action_report,
            ),
            ("Runs", "o: the runs in the runs directory", self.action_runs),
        ]
        for row in self.table.rows_by_id.values():
            commands.append(
                (
                    f"Select agent {row.agent_id}",
                    f"layer {row.layer} · {row.status.value}",
                    partial(self.table.select_agent, row.agent_id),
                )
            )
        return commands
