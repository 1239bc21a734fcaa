"""A yes/no question (kill an agent, quit while running, start a run after its estimate)."""

from __future__ import annotations

from rich.console import RenderableType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on ``y`` (or Yes), False on ``n``, ``esc`` (or No)."""

    CSS_PATH = "confirm.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(
        self,
        title: str,
        message: str | RenderableType,
        *,
        yes: str = "Yes",
        no: str = "No",
        danger: bool = False,
        wide: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.yes_label = yes
        self.no_label = no
        self.danger = danger
        self.wide = wide

    def compose(self) -> ComposeResult:
        classes = " ".join(name for name, on in (("-danger", self.danger), ("-wide", self.wide)) if on)
        with Vertical(id="dialog", classes=classes):
            yield Static(self.title_text, id="question")
            with VerticalScroll(id="message-scroll"):
                yield Static(self.message, id="message", markup=False)
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error" if self.danger else "primary")
                yield Button(f"{self.no_label} (n)", id="no", variant="default")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
