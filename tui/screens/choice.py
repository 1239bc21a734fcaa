"""A question with more than two answers (quit an attached run: detach or stop; start here or detached)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import RenderableType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


@dataclass(frozen=True, slots=True)
class Choice:
    key: str  # the key that picks it (also shown on its button)
    label: str
    value: str
    variant: str = "default"  # a Button variant: "primary", "error", "default"


class ChoiceScreen(ModalScreen[str | None]):
    """Dismisses with the picked choice's ``value``; ``esc`` dismisses with None (changes nothing)."""

    CSS_PATH = "confirm.tcss"
    DEFAULT_CSS = "ChoiceScreen { align: center middle; background: $background 60%; }"
    BINDINGS = [Binding("escape", "pick(None)", "Cancel", id="choice-cancel")]

    def __init__(
        self,
        title: str,
        message: str | RenderableType,
        choices: list[Choice],
        *,
        focus: str | None = None,
        wide: bool = False,
    ) -> None:
        super().__init__()
        self.wide = wide
        self.title_text = title
        self.message = message
        self.choices = choices
        self.focus_value = focus

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="-wide" if self.wide else ""):
            yield Static(self.title_text, id="question")
            with VerticalScroll(id="message-scroll"):
                yield Static(self.message, id="message", markup=False)
            with Horizontal(id="buttons"):
                for choice in self.choices:
                    yield Button(f"{choice.label} ({choice.key})", id=f"choice-{choice.value}",
                                 variant=choice.variant)  # type: ignore[arg-type]  # fmt: skip

    def on_mount(self) -> None:
        for choice in self.choices:
            self._bindings.bind(choice.key, f"pick({choice.value!r})", choice.label, show=False)
        if self.focus_value is not None:
            self.query_one(f"#choice-{self.focus_value}", Button).focus()

    def action_pick(self, value: str | None) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        button = event.button.id or ""
        self.dismiss(button.removeprefix("choice-") or None)
