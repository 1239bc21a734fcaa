"""The main screen of a run: agents, one live pane per running agent, budget, retries, header.

It holds no run state of its own beyond what its widgets show: the bridge's messages carry
current values, and actions call the run's control (pause, resume, kill), never core internals.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from core.control import AgentStatus, RunControl
from tui import messages as msg
from tui.data import Document, RunSource, agent_report_path, run_documents
from tui.format import ACTIVE_STATUSES
from tui.screens.checkpoints import CheckpointBrowserScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.report import ReportViewer
from tui.state import AgentRow, RunInfo
from tui.widgets.agent_pane import AgentPane
from tui.widgets.agent_table import AgentTable
from tui.widgets.budget_meter import BudgetMeter
from tui.widgets.retry_log import RetryLog
from tui.widgets.run_header import RunHeader

PaletteCommand = tuple[str, str, Callable[[], object]]


def pane_columns(width: int) -> int:
    """1 to 3 columns of panes, each at least ~45 cells wide."""
    return 1 if width < 90 else 2 if width < 140 else 3


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding(
            "p", "pause_resume", "Pause", id="pause-resume", tooltip="Pause or resume the selected agent"
        ),
        Binding("k", "kill", "Kill", id="kill"),
        Binding("enter", "focus_pane", "Focus", id="focus-pane"),
        Binding("f", "maximize_pane", "Maximize", id="maximize"),
        Binding("c", "checkpoints", "Checkpoints", id="checkpoints"),
        Binding("r", "report", "Report", id="report"),
        Binding("t", "app.change_theme", "Theme", id="theme", show=False),
        Binding("o", "runs", "Runs", id="runs", show=False),
        Binding("question_mark", "app.help", "Help", id="help", key_display="?"),
        Binding("escape", "unfocus", "Back", show=False, id="unfocus"),
    ]
    MIN_PANE_HEIGHT = 8

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

    # --- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield RunHeader(self.info, clock=self.clock, id="header")
        with Container(id="body"):
            with Vertical(id="agents"):
                yield AgentTable(id="agent-table")
            with Container(id="panes"):
                yield Static("Waiting for agents to start…", id="no-panes")
            with Container(id="bottom"):
                yield BudgetMeter(id="budget")
                yield RetryLog(id="retries")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#agents").border_title = "Agents"
        self.table.focus()

    @property
    def table(self) -> AgentTable:
        return self.query_one(AgentTable)

    @property
    def panes(self) -> dict[str, AgentPane]:
        return {pane.agent_id: pane for pane in self.query(AgentPane)}

    def pane(self, agent_id: str) -> AgentPane | None:
        return self.panes.get(agent_id)

    def on_resize(self) -> None:
        self._layout_panes()

    def _layout_panes(self) -> None:
        grid = self.query_one("#panes", Container)
        n = len(self.query(AgentPane))
        self.query_one("#no-panes").display = n == 0
        if n == 0:
            return
        columns = min(n, pane_columns(grid.size.width or self.size.width))
        rows = math.ceil(n / columns)
        grid.styles.grid_size_columns = columns
        fits = rows * self.MIN_PANE_HEIGHT <= max(1, grid.size.height)
        grid.styles.grid_rows = "1fr" if fits else str(self.MIN_PANE_HEIGHT + 2)

    # --- messages from the bridge ----------------------------------------------------------------

    def on_run_info_changed(self, message: msg.RunInfoChanged) -> None:
        self.info = message.info
        self.query_one(RunHeader).show(message.info)

    async def on_agents_listed(self, message: msg.AgentsListed) -> None:
        self.table.set_rows(message.rows)
        for row in message.rows:
            await self._sync_pane(row)

    async def on_agent_row_changed(self, message: msg.AgentRowChanged) -> None:
        self.table.show_row(message.row)
        await self._sync_pane(message.row)

    async def _sync_pane(self, row: AgentRow) -> None:
        pane = self.pane(row.agent_id)
        if pane is not None:
            pane.show_row(row)
        elif row.status in ACTIVE_STATUSES:
            await self.query_one("#panes").mount(AgentPane(row, id=f"pane-{row.agent_id}"))
            self._layout_panes()

    def on_agent_text_streamed(self, message: msg.AgentTextStreamed) -> None:
        pane = self.pane(message.agent_id)
        if pane is not None:
            pane.append_text(message.text)

    def on_agent_noted(self, message: msg.AgentNoted) -> None:
        pane = self.pane(message.agent_id)
        if pane is not None:
            pane.add_note(message.text)

    def on_agent_turn_ended(self, message: msg.AgentTurnEnded) -> None:
        pane = self.pane(message.agent_id)
        if pane is not None:
            pane.end_turn(paragraph=not message.continues)

    def on_budget_changed(self, message: msg.BudgetChanged) -> None:
        self.query_one(BudgetMeter).update_budget(message.budget)

    def on_incident_logged(self, message: msg.IncidentLogged) -> None:
        self.query_one(RetryLog).log_incident(message.incident)

    async def on_layer_finished(self, _message: msg.LayerFinished) -> None:
        """Finished agents give their place to the next layer's."""
        done = [pane for pane in self.query(AgentPane) if pane.row.status.is_final]
        for pane in done:
            pane.flush()
            await pane.remove()
        self._layout_panes()

    def on_run_ended(self, message: msg.RunEnded) -> None:
        self.run_active = False
        for pane in self.query(AgentPane):
            pane.end_turn()
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
        if status in (AgentStatus.PAUSED, AgentStatus.PAUSING):
            done, verb = self.control.resume(agent), "resume"
        else:
            done, verb = self.control.pause(agent), "pause"
        if not done:
            self.notify(f"Could not {verb} {agent} now ({status.value}).", severity="warning")

    def action_kill(self) -> None:
        agent = self._selected_or_warn()
        if agent is None:
            return
        if self.control.agent_status(agent).is_final:
            self.notify(f"{agent} has already finished.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes and not self.control.kill(agent):
                self.notify(f"Could not kill {agent}.", severity="warning")

        self.app.push_screen(
            ConfirmScreen(
                f"Kill agent {agent}?",
                "The API call in flight is cancelled; what it wrote so far is kept as a partial report. "
                "The agent cannot be resumed in this run.",
                yes="Kill",
                danger=True,
            ),
            answered,
        )

    def action_focus_pane(self) -> None:
        agent = self.table.selected_agent
        pane = self.pane(agent) if agent else None
        if pane is None:
            self.notify(f"{agent} has no live pane (it is not running).", severity="information")
            return
        pane.log_view.focus()

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
        pane.log_view.focus()

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
        run_dir = Path(self.control.run_dir)
        documents = run_documents(run_dir)
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
        agent = self.selected_agent or "the selected agent"
        commands: list[PaletteCommand] = [
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
            (f"Focus the pane of {agent}", "enter", self.action_focus_pane),
            (f"Maximize the pane of {agent}", "f (esc restores)", self.action_maximize_pane),
            ("Checkpoints", "c: browse checkpoints, resume or fork from one", self.action_checkpoints),
            (f"Report of {agent}", "r: the agent's report or the final report", self.action_report),
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
