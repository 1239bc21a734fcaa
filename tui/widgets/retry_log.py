"""The retry and error log: every retry, API error, cap and disk error, newest last, bounded."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from tui.format import clock, short
from tui.state import Incident
from tui.widgets.colors import style


class RetryLog(RichLog):
    DEFAULT_CSS = """
    RetryLog { border: round $panel-lighten-2; border-title-color: $text; background: $surface;
               scrollbar-size-vertical: 1; padding: 0 1; }
    """
    MAX_LINES = 1000

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id, max_lines=self.MAX_LINES, wrap=True, markup=False, highlight=False, min_width=20
        )
        self.incidents = 0

    def on_mount(self) -> None:
        self.border_title = "Retries and errors"

    def log_incident(self, incident: Incident) -> None:
        self.incidents += 1
        self.write(self.render_incident(incident))

    def render_incident(self, incident: Incident) -> Text:
        role = "error" if incident.fatal else "warning"
        line = Text(no_wrap=False)
        line.append(clock(incident.at) + " ", style="dim")
        line.append(f"{short(incident.agent_id or 'run', 12)} ", style=style(self.app, "accent"))
        if incident.status_code is not None:
            line.append(f"{incident.status_code} ", style=style(self.app, role, bold=True))
        line.append(incident.kind, style=style(self.app, role))
        if incident.attempt is not None:
            line.append(f" try {incident.attempt}")
        details: list[str] = []
        if incident.wait_s is not None:
            details.append(f"wait {incident.wait_s:.1f} s")
        if incident.request_id:
            details.append(short(incident.request_id, 16))
        if incident.message and (incident.fatal or incident.attempt is None):
            details.append(incident.message)
        if details:
            line.append("\n  " + "  ".join(details), style="dim")
        return line
