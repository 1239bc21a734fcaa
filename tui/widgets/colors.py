"""Rich styles from the current Textual theme, for renderables that cannot use TCSS variables.

Widgets that render Rich ``Text`` (table cells, log lines) rebuild it on a theme change so the
new colours apply; see each widget's ``_on_theme_changed``.
"""

from __future__ import annotations

from rich.style import Style
from textual.app import App

from core.control import AgentStatus

_FALLBACK = {
    "success": "#4caf50",
    "warning": "#ffb300",
    "error": "#f44336",
    "accent": "#ffa62b",
    "primary": "#0178d4",
    "foreground": "#e0e0e0",
    "secondary": "#8f9fe0",
}


def theme_color(app: App[object], role: str) -> str:
    theme = app.current_theme
    value = getattr(theme, role, None)
    return str(value) if value else _FALLBACK[role]


def style(
    app: App[object],
    role: str,
    *,
    bold: bool | None = None,
    dim: bool | None = None,
    italic: bool | None = None,
) -> Style:
    return Style(color=theme_color(app, role), bold=bold, dim=dim, italic=italic)


def status_style(app: App[object], status: AgentStatus) -> Style:
    if status in (AgentStatus.RUNNING, AgentStatus.COMPLETED):
        return style(app, "success")
    if status in (AgentStatus.PAUSING, AgentStatus.PAUSED, AgentStatus.BUDGET_EXHAUSTED):
        return style(app, "warning")
    if status in (AgentStatus.FAILED, AgentStatus.KILLED, AgentStatus.REFUSED, AgentStatus.SKIPPED):
        return style(app, "error")
    return Style(dim=True)
