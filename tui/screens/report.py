"""Reports as Markdown: one agent's, the final synthesis, or every document of a run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, MarkdownViewer, OptionList, Static
from textual.widgets.option_list import Option

from core.persistence.rundir import RunDir
from core.reports.verify import Verification, verify_run
from tui.data import Document, read_document


class ReportViewer(Screen[None]):
    CSS_PATH = "report.tcss"
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="report-close", tooltip="back to the screen before"),
        Binding("question_mark", "app.help", "Help", id="report-help", key_display="?", tooltip="this help"),
    ]
    HELP_TITLE = "Keys in the report viewer"
    HELP_KEYS = (
        ("↑ ↓ pgup pgdn", "scroll the document"),
        ("tab", "move between the list of documents and the document"),
    )
    HELP_LEGEND = (
        ("[[3]]", "a citation: source 3 of the document's Sources list (a link)"),
        ("✓ / ✗ line", "verify RUN for a finished run: what it checked, or its problems"),
    )

    def __init__(self, title: str, documents: list[Document], *, selected: int = 0) -> None:
        super().__init__()
        self.title_text = title
        self.documents = documents
        self.selected = selected

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="report-title")
        yield Static("", id="report-verify", markup=False)
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
        self._verify()
        if len(self.documents) > 1:
            option_list = self.query_one(OptionList)
            option_list.highlighted = self.selected

    @on(OptionList.OptionHighlighted)
    async def _show(self, event: OptionList.OptionHighlighted) -> None:
        index = int(event.option.id or 0)
        if index != self.selected:
            self.selected = index
            await self.query_one(MarkdownViewer).document.update(self._markdown())

    @work(exclusive=True, group="verify")
    async def _verify(self) -> None:
        """For a finished run, the same provenance check as ``research-orchestrator verify RUN``."""
        checked = await asyncio.to_thread(_check_finished_run, self.documents)
        if checked is None:
            return
        run, result = checked
        line = self.query_one("#report-verify", Static)
        if result.ok:
            line.update(f"✓ verified: {'; '.join(result.checked)}")
            line.set_class(True, "-verified")
            return
        count = len(result.problems)
        more = f" (+{count - 3} more: `research-orchestrator verify {run.run_id}`)" if count > 3 else ""
        shown = "; ".join(str(p) for p in result.problems[:3])
        line.update(f"✗ {count} provenance problem(s): {shown}{more}")
        line.set_class(True, "-problems")

    def action_close(self) -> None:
        self.dismiss(None)


def _check_finished_run(documents: list[Document]) -> tuple[RunDir, Verification] | None:
    """``verify`` of the run the documents belong to, once it is no longer running (off the loop)."""
    for document in documents:
        for candidate in (document.path.parent, document.path.parent.parent):
            run = RunDir(Path(candidate))
            if run.summary_path.is_file():
                summary = run.read_summary() or {}
                if summary.get("status") in (None, "running"):
                    return None
                return run, verify_run(run)
    return None
