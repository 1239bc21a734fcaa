"""``?``: the keys of the screen below, read from its bindings, and a legend of what it shows.

Nothing is listed by hand: each screen's ``BINDINGS`` (with their tooltips as the longer text) and
the app's are read when help opens, so help cannot drift from the keys. A screen adds keys its
widgets own (``HELP_KEYS``, e.g. ↑/↓ in a table) and a legend of its columns (``HELP_LEGEND``).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

APP_KEYS: tuple[tuple[str, str], ...] = (("ctrl+p", "command palette: every action, searchable"),)


def binding_rows(node: DOMNode, app: App[object]) -> list[tuple[str, str]]:
    """(keys, what they do) for each action bound on ``node``, keys of one action joined."""
    rows: dict[str, tuple[list[str], str]] = {}
    for binding in Binding.make_bindings(getattr(type(node), "BINDINGS", [])):
        text = binding.tooltip or binding.description
        if binding.system or not text:
            continue
        if node is not app and not _enabled(node, binding.action):
            continue
        keys, _ = rows.setdefault(binding.action, ([], text))
        shown = app.get_key_display(binding)
        if shown not in keys:
            keys.append(shown)
    return [(" ".join(keys), text) for keys, text in rows.values()]


def _enabled(node: DOMNode, action: str) -> bool:
    if "." in action.split("(")[0]:  # "app.help": the app decides
        return True
    check = getattr(node, "check_action", None)
    return check is None or check(action.split("(")[0], ()) is not False


def help_rows(screen: Screen[object], app: App[object]) -> list[tuple[str, str]]:
    extra: Sequence[tuple[str, str]] = getattr(screen, "HELP_KEYS", ())
    rows = list(extra) + binding_rows(screen, app) + list(APP_KEYS) + binding_rows(app, app)
    seen: set[str] = set()
    unique = []
    for keys, text in rows:
        if keys not in seen:
            seen.add(keys)
            unique.append((keys, text))
    return unique


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close", id="help-close")]

    def __init__(self, screen: Screen[object]) -> None:
        super().__init__()
        self.target = screen

    def compose(self) -> ComposeResult:
        title = getattr(self.target, "HELP_TITLE", "Keys")
        with Vertical(id="help") as box:
            box.border_title = title
            box.border_subtitle = "esc closes"
            with VerticalScroll(id="help-scroll"):
                yield Static(self._keys(), id="help-keys")
                legend: Sequence[tuple[str, str]] = getattr(self.target, "HELP_LEGEND", ())
                if legend:
                    yield Static(self._legend(legend), id="help-legend")

    def _keys(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column()
        accent = str(self.app.current_theme.accent or "")
        for keys, text in help_rows(self.target, self.app):
            table.add_row(Text(keys, style=f"bold {accent}".strip()), text)
        return table

    @staticmethod
    def _legend(rows: Sequence[tuple[str, str]]) -> Text:
        """What the screen shows, as one flowing paragraph (it fits 80x24 with the keys above it)."""
        legend = Text()
        for index, (shown, meaning) in enumerate(rows):
            if index:
                legend.append(" · ")
            legend.append(shown, style="bold")
            legend.append(f" {meaning}")
        return legend

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
