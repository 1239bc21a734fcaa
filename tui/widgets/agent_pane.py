"""A pane: one agent's live stream in a bordered box, with its turn, searches, dollars and state.

A pane shows an :class:`~tui.feed.AgentFeed` and can be bound to another one at any time (the
main screen keeps as many panes as fit and binds them to the agents worth showing): the border,
the state class and the text follow the feed; nothing is mounted or laid out again.
"""

from __future__ import annotations

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.theme import Theme
from textual.widget import Widget

from core.control import AgentStatus
from core.lifecycle import IN_BATCH
from tui.feed import AgentFeed
from tui.format import money, plural
from tui.widgets.colors import style
from tui.widgets.stream_view import StreamView

_STATUS_WORDS = {
    AgentStatus.PAUSING: "pausing…",
    AgentStatus.PAUSED: "paused",
    AgentStatus.KILLED: "killed",
    AgentStatus.FAILED: "failed",
    AgentStatus.COMPLETED: "✓ done",
    AgentStatus.REFUSED: "refused",
    AgentStatus.BUDGET_EXHAUSTED: "budget exhausted",
    AgentStatus.PENDING: "pending",
    AgentStatus.WAITING_FOR_BUDGET: "waiting for budget",
    AgentStatus.INTERRUPTED: "interrupted",
    AgentStatus.SKIPPED: "skipped",
}
_CLASS_WORDS = {
    AgentStatus.COMPLETED: "done",
    AgentStatus.REFUSED: "failed",
    AgentStatus.BUDGET_EXHAUSTED: "done",
}
_NOTE_PREFIXES = {  # first characters of a note line -> theme role and attributes of its style
    "🔍": ("accent", {"bold": True}),
    "   →": ("secondary", {}),
    "⟲": ("foreground", {"dim": True, "italic": True}),
    "↻": ("foreground", {"dim": True, "italic": True}),
    "‖": ("warning", {"bold": True}),
    "▶": ("success", {}),
    "⇣": ("secondary", {"italic": True}),
    "☠": ("error", {"bold": True}),
    "✗": ("error", {"bold": True}),
    "✓": ("success", {"bold": True}),
}


class NoteHighlighter(Highlighter):
    """Styles note lines by their leading glyph; the model's prose is left as it is."""

    def __init__(self) -> None:
        self.styles: dict[str, Style] = {}

    def highlight(self, text: Text) -> None:
        plain = text.plain
        for prefix, line_style in self.styles.items():
            if plain.startswith(prefix):
                text.stylize(line_style)
                return


class AgentPane(Widget):
    DEFAULT_CSS = """
    AgentPane {
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        height: 1fr;
        min-height: 5;
        padding: 0 0 0 1;
        background: $surface;
    }
    AgentPane:focus-within { border: round $primary; border-title-style: bold; }
    AgentPane.-pausing, AgentPane.-paused { border: round $warning 70%; border-subtitle-color: $warning; }
    AgentPane.-killed, AgentPane.-failed { border: round $error 70%; border-subtitle-color: $error; }
    AgentPane.-done { border: round $success 50%; border-subtitle-color: $success; }
    AgentPane StreamView { background: $surface; }
    """
    can_focus = False
    allow_maximize = True

    def __init__(self, feed: AgentFeed | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.feed: AgentFeed | None = None
        self._highlighter = NoteHighlighter()
        self._class_word = ""
        self._status_word = ""
        self._behind = 0
        self.view = StreamView(max_lines=AgentFeed.MAX_LINES)
        self.view.highlighter = self._highlighter
        if feed is not None:
            self.bind(feed)

    def compose(self) -> ComposeResult:
        yield self.view

    def on_mount(self) -> None:
        self._apply_theme(self.app.current_theme)
        self.app.theme_changed_signal.subscribe(self, self._apply_theme)

    def on_unmount(self) -> None:
        if self.feed is not None and self.feed.watcher is self:
            self.feed.watcher = None

    def _apply_theme(self, _theme: Theme) -> None:
        self._highlighter.styles = {
            prefix: style(self.app, role, **attrs) for prefix, (role, attrs) in _NOTE_PREFIXES.items()
        }
        self.view.refresh_style()

    @property
    def agent_id(self) -> str | None:
        """The agent shown (None: the pane is not bound yet)."""
        return self.feed.agent_id if self.feed is not None else None

    @property
    def text(self) -> str:
        """The unwrapped tail the pane shows."""
        return self.feed.text if self.feed is not None else ""

    def bind(self, feed: AgentFeed) -> None:
        """Show ``feed`` from now on (taking it from a pane that showed it before)."""
        if feed is self.feed:
            return
        if self.feed is not None and self.feed.watcher is self:
            self.feed.watcher = None
        if isinstance(feed.watcher, AgentPane):
            feed.watcher.feed = None
        self.feed = feed
        feed.watcher = self
        self._behind = 0
        self.view.show(feed.buffer)
        self.feed_row_changed()

    # --- what the feed calls ------------------------------------------------------------------

    def feed_written(self) -> None:
        self.view.sync()

    def feed_row_changed(self) -> None:
        """Border and state class from the feed's row; nothing that did not change is touched."""
        if self.feed is None:
            return
        row = self.feed.row
        title = f"{row.agent_id} ▸ turn {row.turn} ─ {plural(row.searches, 'search')} ─ {money(row.cost_usd)}"
        if self.border_title != title:
            self.border_title = title
        self._status_word = _STATUS_WORDS.get(row.status, "")
        if row.note and row.note.startswith(IN_BATCH):  # its request waits in a Message Batch
            self._status_word = IN_BATCH
        self._show_subtitle()
        word = _CLASS_WORDS.get(row.status, row.status.value)
        if word != self._class_word:
            if self._class_word:
                self.remove_class(f"-{self._class_word}")
            self._class_word = word
            self.add_class(f"-{word}")

    def _show_subtitle(self) -> None:
        subtitle = self._status_word
        if self._behind:
            subtitle = f"{subtitle} · " if subtitle else ""
            subtitle += f"↓ {plural(self._behind, 'more line', 'more lines')} (end: follow)"
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle

    def on_stream_view_scrolled(self, message: StreamView.Scrolled) -> None:
        message.stop()
        self._behind = message.behind
        self._show_subtitle()
