"""One agent's live stream: text, searches and state changes, repainted at most ~10 times a second.

Fragments are buffered and flushed by a :class:`~tui.coalesce.Coalescer` (the screen shares one
across all panes, so every dirty pane reaches the screen in the same frame; a pane on its own
makes its own). The pane keeps a bounded tail of the transcript (the full one is in the run
directory); its view wraps that tail at the width it is drawn at, whatever width it arrived at.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.theme import Theme
from textual.widget import Widget

from core.control import AgentStatus
from core.view import AgentRow
from tui.coalesce import Coalescer
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


@dataclass(slots=True)
class _Note:
    text: str


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
    FLUSH_INTERVAL = 0.1
    MAX_LINES = 400
    TAIL_CHARS = 20_000
    HOLD_MAX = 40  # a partial word longer than this is written anyway

    can_focus = False
    allow_maximize = True

    def __init__(self, row: AgentRow, *, id: str | None = None, coalescer: Coalescer | None = None) -> None:
        super().__init__(id=id)
        self.agent_id = row.agent_id
        self.row = row
        self._pending: list[str | _Note] = []
        self._held = ""
        self._release_held = False
        self._raw = ""
        self._coalescer = coalescer
        self._highlighter = NoteHighlighter()
        self._class_word = ""
        self._status_word = ""
        self._behind = 0
        self.view = StreamView(max_lines=self.MAX_LINES)
        self.view.highlighter = self._highlighter
        self.flushes = 0

    def compose(self) -> ComposeResult:
        yield self.view

    def on_mount(self) -> None:
        self._apply_theme(self.app.current_theme)
        self.app.theme_changed_signal.subscribe(self, self._apply_theme)
        self.show_row(self.row)

    def on_unmount(self) -> None:
        if self._coalescer is not None:
            self._coalescer.discard(self)

    def _apply_theme(self, _theme: Theme) -> None:
        self._highlighter.styles = {
            prefix: style(self.app, role, **attrs) for prefix, (role, attrs) in _NOTE_PREFIXES.items()
        }
        self.view.refresh_style()

    # --- what the screen calls ----------------------------------------------------------------

    def show_row(self, row: AgentRow) -> None:
        """Border and state class from ``row``; nothing is touched (or repainted) that did not change."""
        self.row = row
        title = f"{row.agent_id} ▸ turn {row.turn} ─ {plural(row.searches, 'search')} ─ {money(row.cost_usd)}"
        if self.border_title != title:
            self.border_title = title
        self._status_word = _STATUS_WORDS.get(row.status, "")
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

    def append_text(self, text: str) -> None:
        self._pending.append(text)
        self._schedule()

    def add_note(self, text: str) -> None:
        self._pending.append(_Note(text))
        self._schedule()

    def end_turn(self, *, paragraph: bool = False) -> None:
        """The model stopped: a held-back partial word is complete now.

        With ``paragraph`` the next turn's text starts on a new paragraph instead of being glued
        to the last word of this one.
        """
        if paragraph:
            self._pending.append("\n\n")
        self._release_held = True
        self._schedule()

    @property
    def text(self) -> str:
        """The bounded, unwrapped tail of what the pane has shown (the full transcript is on disk)."""
        return self._raw

    # --- coalescing ---------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._coalescer is None:
            self._coalescer = Coalescer(self, self.FLUSH_INTERVAL)
        self._coalescer.mark(self)

    def flush(self) -> None:
        items, self._pending = self._pending, []
        out: list[str] = []
        for item in items:
            if isinstance(item, _Note):
                out.append(self._feed(self._take_held(all_of_it=True)))
                start = "" if not self._raw or self._raw.endswith("\n") else "\n"
                out.append(self._feed(f"{start}{item.text}\n"))
            else:
                self._held += item
        release, self._release_held = self._release_held, False
        out.append(self._feed(self._take_held(all_of_it=release)))
        written = "".join(out)
        if written:
            self.flushes += 1
            self.view.write(written)

    def _feed(self, raw: str) -> str:
        """Remember ``raw`` (bounded) and return it for the view, which wraps it at its width."""
        self._raw += raw
        if len(self._raw) > self.TAIL_CHARS * 3 // 2:
            cut = self._raw.find("\n", len(self._raw) - self.TAIL_CHARS)
            self._raw = self._raw[cut + 1 :] if cut >= 0 else self._raw[-self.TAIL_CHARS :]
        return raw

    def _take_held(self, *, all_of_it: bool) -> str:
        """The buffered text up to its last whitespace (the rest may be half a word)."""
        text = self._held
        cut = len(text) if all_of_it else max(text.rfind(" "), text.rfind("\n")) + 1
        if not all_of_it and len(text) - cut > self.HOLD_MAX:
            cut = len(text)
        self._held = text[cut:]
        return text[:cut]
