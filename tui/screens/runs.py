"""The runs in the runs directory: open one (reports, journal), resume it, or start a new run."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from core.catalogue import RunEntry
from tui.data import RunSource, load_estimate, resume_destination, run_documents
from tui.format import clock, short
from tui.messages import AttachRequested, NewRunRequested, ResumeRequested
from tui.screens.checkpoints import CheckpointBrowserScreen
from tui.screens.choice import Choice, ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.estimate_view import estimate_view

_RESUMABLE = {"running", "interrupted", "failed", "budget_exhausted", "killed", "unknown"}


class RunsScreen(Screen[None]):
    CSS_PATH = "runs.tcss"
    BINDINGS = [
        Binding("enter,o", "open_run", "Open", id="runs-open", tooltip="open the run's reports and journal"),
        Binding(
            "r",
            "resume_run",
            "Resume",
            id="runs-resume",
            tooltip="resume the run where it stopped (asks first, naming the run)",
        ),
        Binding(
            "n",
            "new_run",
            "New run",
            id="runs-new",
            tooltip="start a new run (shows its cost estimate first)",
        ),
        Binding(
            "c", "checkpoints", "Checkpoints", id="runs-checkpoints", tooltip="fork the run from a checkpoint"
        ),
        Binding("g", "reload", "Refresh", id="runs-refresh", tooltip="read the runs directory again"),
        Binding("home", "first_run", "First", show=False, priority=True, tooltip="the first run"),
        Binding("end", "last_run", "Last", show=False, priority=True, tooltip="the last run"),
        Binding("escape", "back", "Back", id="runs-back", tooltip="back to the active run"),
        Binding("t", "app.change_theme", "Theme", id="runs-theme", tooltip="choose a theme (remembered)"),
        Binding("question_mark", "app.help", "Help", id="runs-help", key_display="?", tooltip="this help"),
    ]
    HELP_TITLE = "Keys on the runs screen"
    HELP_KEYS = (("↑ ↓ pgup pgdn", "select a run"),)
    HELP_LEGEND = (
        ("status", "running, interrupted (resumable), completed, failed, killed, budget_exhausted"),
        ("cost", "dollars the run has spent"),
        ("forked from", "the run whose checkpoint this run started from"),
    )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # only over another screen (the run's), not as the first screen
            stack = self.app.screen_stack
            return self in stack and stack.index(self) >= 2
        return True

    def __init__(self, runs_dir: Path, source: RunSource, *, config_path: Path | None) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.source = source
        self.config_path = config_path
        self.runs: list[RunEntry] = []

    def compose(self) -> ComposeResult:
        yield Static(f"research-orchestrator ─ runs in {self.runs_dir}", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row")
        yield Static("", id="runs-hint")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p is in help; ^q must fit 80 columns

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (
            ("run", "run"),
            ("program", "program"),
            ("status", "status"),
            ("cost", "cost"),
            ("created", "started"),
            ("parent", "forked from"),
        ):
            table.add_column(label, key=key)
        self.action_reload()
        table.focus()

    def action_reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        self.runs = self.source.list_runs(self.runs_dir)
        for run in self.runs:
            status_style = {"completed": "green", "running": "cyan", "failed": "red", "killed": "red"}.get(
                run.status, "yellow"
            )
            table.add_row(
                short(run.run_id, 44),
                short(run.program, 24),
                _status_cell(run, status_style),
                Text(f"${run.cost_usd:,.2f}", justify="right"),
                clock(run.created),
                run.forked_from,
                key=run.run_id,
            )
        config = f"n starts a new run from {self.config_path}" if self.config_path else ""
        hint = "" if self.runs else f"No runs in {self.runs_dir} yet. "
        self.query_one("#runs-hint", Static).update(hint + config)

    def selected(self) -> RunEntry | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    @on(DataTable.RowSelected)
    def _selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def action_open_run(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.live:  # owned by another process: watch and steer it
            self.app.post_message(AttachRequested(run.run_id))
            return
        from tui.screens.report import ReportViewer  # here: Markdown loads markdown_it (~50 ms)

        self.app.push_screen(ReportViewer(f"run {run.run_id} ─ {run.status}", run_documents(run.path)))

    def action_resume_run(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.live:  # its owner is still running it: attach instead
            self.app.post_message(AttachRequested(run.run_id))
            return
        if run.status not in _RESUMABLE:
            self.notify(f"{run.run_id} is {run.status}; pick a checkpoint (c) to fork it instead.")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.app.post_message(ResumeRequested(run.run_id, None))

        where = resume_destination(run.path, getattr(self.app, "simulate", None))
        self.app.push_screen(
            ConfirmScreen(
                f"Resume run {run.run_id}?",
                f"It is {run.status.replace('_', ' ')}, with ${run.cost_usd:,.2f} spent ({run.program}). "
                f"Resuming continues its agents where they stopped, on {where}, and can spend more "
                "(its budget caps still hold).",
                yes="Resume",
            ),
            answered,
        )

    def action_first_run(self) -> None:
        self.query_one(DataTable).move_cursor(row=0)

    def action_last_run(self) -> None:
        self.query_one(DataTable).move_cursor(row=max(0, len(self.runs) - 1))

    def action_checkpoints(self) -> None:
        run = self.selected()
        self.app.push_screen(
            CheckpointBrowserScreen(self.runs_dir, self.source, run_id=run.run_id if run else None)
        )

    def action_new_run(self) -> None:
        if self.config_path is None:
            self.notify(
                "No config given: start the app with `research-orchestrator run CONFIG`.", severity="warning"
            )
            return
        config = self.config_path

        def answered(choice: str | None) -> None:
            if choice in ("here", "detach"):
                self.app.post_message(NewRunRequested(str(config), detach=choice == "detach"))

        estimate = load_estimate(config)
        body = Text(estimate) if isinstance(estimate, str) else estimate_view(estimate)  # no markup
        self.app.push_screen(
            ChoiceScreen(
                f"Start a new run from {config}?",
                Group(
                    body,
                    Text(
                        "\nDetached: the run is owned by a background process that goes on when the app "
                        "closes; the app attaches to it."
                    ),
                ),
                [
                    Choice("y", "Start", "here", "primary"),
                    Choice("d", "Start detached", "detach"),
                    Choice("n", "Cancel", "cancel"),
                ],
                focus="here",
                wide=True,
            ),
            answered,
        )

    def action_back(self) -> None:
        if self.check_action("back", ()):
            self.dismiss(None)


def _status_cell(run: RunEntry, style: str) -> Text:
    """The status, and for a live run a marker with its owner (enter attaches to it)."""
    if not run.live:
        return Text(run.status, style=style)
    owner = f" pid {run.owner_pid}" if run.owner_pid else ""
    return Text.assemble(("● live", "bold cyan"), f"{owner} ", (run.status, style))
