"""``?``: every key of the screen below, grouped, with what it does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓", "select an agent in the list"),
    ("tab", "move between the list and the panes"),
    ("enter", "focus the selected agent's pane"),
    ("p", "pause the selected agent (its turn in flight finishes) or resume it"),
    ("k", "kill the selected agent (asks first; a partial report is kept)"),
    ("f", "maximize the selected agent's pane (esc restores)"),
    ("c", "checkpoint browser: resume or fork from any checkpoint"),
    ("r", "the selected agent's report, or the final report"),
    ("o", "runs in the runs directory"),
    ("t", "choose a theme (remembered)"),
    ("ctrl+p", "command palette: every action"),
    ("?", "this help"),
    ("ctrl+q", "quit (while a run is active: asks, then stops it cleanly; resumable)"),
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close", id="help-close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static("Keys", id="help-title")
            table: DataTable[str] = DataTable(id="help-keys", cursor_type="none", show_header=False)
            yield table
            yield Static(
                "esc closes · statuses: ● running  ‖ paused  ✓ done  ✗ failed  ○ pending  ☠ killed",
                id="help-footer",
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action")
        for key, action in KEYS:
            table.add_row(key, action)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
