"""The retry and error log: every retry, API error, cap and disk error, newest last, bounded.

Lines are kept as data (:class:`~core.view.Incident`) and drawn as :class:`Content` whose styles are
theme variables (``$warning``), so a theme switch recolours them and a resize re-wraps them; the
option list renders at the current width. Enter (or a click) on a line asks for its details
(:class:`RetryLog.DetailsRequested`); the screen shows them, where the full request id can be copied.
"""

from __future__ import annotations

from textual import on
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from core.view import Incident
from tui.format import clock


def describe_incident(incident: Incident) -> Content:
    """One log entry: time, agent, status and kind, then the wait, full request id and message."""
    role = "$error" if incident.fatal else "$warning"
    parts: list[tuple[str, str] | str] = [
        (clock(incident.at), "$text-muted"),
        " ",
        (incident.agent_id or "run", "$accent"),
        " ",
    ]
    if incident.status_code is not None:
        parts += [(str(incident.status_code), f"{role} bold"), " "]
    parts.append((incident.kind, role))
    if incident.attempt is not None:
        parts.append(f" try {incident.attempt}")
    details: list[str] = []
    if incident.wait_s is not None:
        details.append(f"wait {incident.wait_s:.1f} s")
    if incident.request_id:
        details.append(incident.request_id)
    if incident.message and (incident.fatal or incident.attempt is None):
        details.append(incident.message)
    if details:
        parts.append(("\n  " + "  ".join(details), "$text-muted"))
    return Content.assemble(*parts)


class RetryLog(OptionList):
    class DetailsRequested(Message):
        """A line was chosen: show the incident's details (a widget asks; its screen decides)."""

        def __init__(self, incident: Incident) -> None:
            super().__init__()
            self.incident = incident

    DEFAULT_CSS = """
    RetryLog { border: round $panel-lighten-2; border-title-color: $text; background: $surface;
               scrollbar-size-vertical: 1; padding: 0 0 0 1; }
    RetryLog:focus { border: round $primary; }
    RetryLog > .option-list--option-highlighted { background: $surface; text-style: none; }
    RetryLog:focus > .option-list--option-highlighted { background: $block-cursor-blurred-background; }
    """
    MAX_LINES = 1000

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[Incident] = []

    @property
    def incidents(self) -> int:
        return len(self.entries)

    def on_mount(self) -> None:
        self.border_title = "Retries and errors"

    def log_incident(self, incident: Incident) -> None:
        following = self.highlighted is None or self.highlighted >= self.option_count - 1
        self.entries.append(incident)
        self.add_option(Option(describe_incident(incident)))
        if self.option_count > self.MAX_LINES:
            self.remove_option_at_index(0)
            del self.entries[0]
        if following:
            self.highlighted = self.option_count - 1
            self.scroll_end(animate=False)

    def selected_incident(self) -> Incident | None:
        index = self.highlighted
        return self.entries[index] if index is not None and 0 <= index < len(self.entries) else None

    @on(OptionList.OptionSelected)
    def _show_details(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        incident = self.selected_incident()
        if incident is not None:
            self.post_message(self.DetailsRequested(incident))
