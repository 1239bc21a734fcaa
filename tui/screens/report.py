"""Reports as Markdown: one agent's, the final synthesis, or every document of a run."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, MarkdownViewer, OptionList, Static
from textual.widgets.option_list import Option

from tui.data import Document, read_document


class ReportViewer(Screen[None]):
    CSS_PATH = "report.tcss"
    BINDINGS = [Binding("escape,q", "close", "Back", id="report-close")]

    def __init__(self, title: str, documents: list[Document], *, selected: int = 0) -> None:
        super().__init__()
        self.title_text = title
        self.documents = documents
        self.selected = selected

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="report-title")
        with Horizontal():
            if len(self.documents) > 1:
                yield OptionList(
                    *(Option(d.title, id=str(i)) for i, d in enumerate(self.documents)), id="report-list"
                )
            yield MarkdownViewer(self._markdown(), id="report-body", show_table_of_contents=False)
        yield Footer()

    def _markdown(self) -> str:
        if not self.documents:
            return "*No report yet: reports are written when an agent finishes (or is killed).*"
        return read_document(self.documents[self.selected].path)

    def on_mount(self) -> None:
        if len(self.documents) > 1:
            option_list = self.query_one(OptionList)
            option_list.highlighted = self.selected

    @on(OptionList.OptionHighlighted)
    async def _show(self, event: OptionList.OptionHighlighted) -> None:
        index = int(event.option.id or 0)
        if index != self.selected:
            self.selected = index
            await self.query_one(MarkdownViewer).document.update(self._markdown())

    def action_close(self) -> None:
        self.dismiss(None)
