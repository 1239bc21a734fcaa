"""Details of one retry or error line: every field in full, the request id one key from the clipboard.

A support request needs the exact request id; the log line wraps it, this view shows it whole and
copies it (``c``) with the terminal's clipboard escape (OSC 52), which works over ssh too.
"""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from core.view import Incident


def incident_fields(incident: Incident) -> list[tuple[str, str]]:
    """(label, value) rows for every field the incident has."""
    rows = [
        ("time", datetime.fromtimestamp(incident.at).isoformat(sep=" ", timespec="seconds")),  # local
        ("agent", incident.agent_id or "(the run)"),
        ("kind", incident.kind),
    ]
    if incident.status_code is not None:
        rows.append(("HTTP status", str(incident.status_code)))
    if incident.attempt is not None:
        rows.append(("attempt", str(incident.attempt)))
    if incident.wait_s is not None:
        rows.append(("retry after", f"{incident.wait_s:.1f} s"))
    rows.append(("outcome", "gave up" if incident.fatal else "retried"))
    rows.append(("request id", incident.request_id or "(none: no response was received)"))
    if incident.message:
        rows.append(("message", incident.message))
    return rows


class IncidentScreen(ModalScreen[None]):
    CSS_PATH = "incident.tcss"
    BINDINGS = [
        Binding("c", "copy", "Copy request id", id="incident-copy"),
        Binding("escape,q", "close", "Close", id="incident-close"),
    ]

    def __init__(self, incident: Incident) -> None:
        super().__init__()
        self.incident = incident

    def compose(self) -> ComposeResult:
        with Vertical(id="incident"):
            yield Static("Retry or error", id="incident-title")
            yield Static(self._fields(), id="incident-fields")
            with Horizontal(id="incident-buttons"):
                yield Button("Copy request id (c)", id="copy", disabled=not self.incident.request_id)
                yield Button("Close (esc)", id="close")

    def _fields(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")  # a request id is never cut, only folded
        for label, value in incident_fields(self.incident):
            table.add_row(label, value)
        return table

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_copy(self) -> None:
        request_id = self.incident.request_id
        if not request_id:
            self.notify("This line has no request id (no response was received).", severity="warning")
            return
        self.app.copy_to_clipboard(request_id)
        self.notify(f"Copied {request_id}", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#copy")
    def _copy(self) -> None:
        self.action_copy()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)
