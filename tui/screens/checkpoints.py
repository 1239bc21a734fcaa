"""Run → agent → checkpoint, with what each checkpoint holds, and "resume from here".

Resuming from a run's latest good checkpoint continues that run in place; from an earlier one
it forks a new run (the core decides; the button says which will happen).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Static, Tree
from textual.widgets.tree import TreeNode

from core.catalogue import RunEntry
from core.control import AgentStatus
from core.persistence.checkpoints import CheckpointInfo
from tui.data import RunSource
from tui.format import clock, count, middle, money, short
from tui.messages import ResumeRequested

NodeData = tuple[str, str | None]  # (run id, agent id or None for the whole run)
PREVIEW_CHARS = 1200
TREE_WIDTH, TREE_SHARE = 38, 0.45  # the run tree's width: as in checkpoints.tcss


def distinct(entries: list[CheckpointInfo]) -> list[CheckpointInfo]:
    """Checkpoints in seq order, one per state: an agent's final checkpoint repeats its last turn's
    conversation (only its status differs), so the later of two identical ones stands for both."""
    latest: dict[tuple[str, int, int, str], CheckpointInfo] = {}
    for entry in sorted(entries, key=lambda e: e.seq):
        latest[(entry.agent_id, entry.turn, entry.tokens, entry.status)] = entry
    return sorted(latest.values(), key=lambda e: e.seq)


def agent_state_at(entry: CheckpointInfo, newest: bool, run: RunEntry | None) -> str:
    """What the agent was doing at a checkpoint, as a reader of a stopped run needs it: a finished
    agent's status; "interrupted" for the last checkpoint of an agent a run stopped mid-way (its
    saved status says running, which it no longer is); "in progress" for an earlier one."""
    try:
        status = AgentStatus(entry.agent_status)
    except ValueError:
        return entry.agent_status or "unknown"
    if status.is_final:
        return status.value.replace("_", " ")
    if newest and run is not None and not run.live and run.status != "running":
        return "interrupted here (a resume continues it)"
    return "in progress"


class CheckpointBrowserScreen(Screen[None]):
    CSS_PATH = "checkpoints.tcss"
    BINDINGS = [
        Binding("escape,q", "close", "Back", id="checkpoints-close", tooltip="back to the screen before"),
        Binding(
            "R",
            "resume_here",
            "Resume from here",
            id="checkpoints-resume",
            tooltip="resume from it: the latest continues the run, an earlier one forks a new run",
        ),
        Binding(
            "tab", "app.focus_next", "Next pane", show=False, tooltip="move between the runs and checkpoints"
        ),
        Binding(
            "question_mark", "app.help", "Help", id="checkpoints-help", key_display="?", tooltip="this help"
        ),
    ]
    HELP_TITLE = "Keys in the checkpoint browser"
    HELP_KEYS = (
        ("↑ ↓", "pick a run or agent (left), a checkpoint (right)"),
        ("enter", "on a checkpoint: resume from it (as R)"),
    )
    HELP_LEGEND = (
        ("state", "ok, or corrupt (skipped by a resume)"),
        ("t4", "the agent's turn 4 (a checkpoint is saved after every turn)"),
        ("agent $", "what the agent had spent by then"),
    )

    def __init__(
        self, runs_dir: Path, source: RunSource, *, run_id: str | None = None, agent_id: str | None = None
    ) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.source = source
        self.initial = (run_id, agent_id)
        self.runs: dict[str, RunEntry] = {}
        self.checkpoints: dict[str, list[CheckpointInfo]] = {}
        self.shown: list[CheckpointInfo] = []
        self.current_run: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Checkpoints ─ pick one and resume from it", id="browser-title")
        with Horizontal(id="browser-body"):
            tree: Tree[NodeData] = Tree("runs", id="run-tree")
            tree.show_root = False
            yield tree
            with Vertical(id="browser-right"):
                yield DataTable(id="checkpoint-table", cursor_type="row")
                with VerticalScroll(id="preview-scroll"):
                    yield Static("", id="preview", markup=False)
                with Horizontal(id="browser-buttons"):
                    yield Static("", id="resume-hint")
                    yield Button("Resume from here", id="resume", variant="primary", disabled=True)
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (  # integrity first: it must never be the column cut off
            ("state", "state"),
            ("turn", "turn"),
            ("agent", "agent"),
            ("time", "time"),
            ("cost", "agent $"),
            ("tokens", "run tokens"),
        ):
            table.add_column(label, key=key)
        table.border_title = "Checkpoints"
        tree = self.query_one(Tree)
        tree.border_title = "Runs ▸ agents"
        self.query_one("#preview-scroll").border_title = "Last exchange"
        run_id, agent_id = self.initial
        selected: TreeNode[NodeData] | None = None
        # a run id cut in the middle keeps its start (date, time) and its end (the distinguishing suffix)
        label_width = max(16, min(TREE_WIDTH, int(self.app.size.width * TREE_SHARE)) - 6)
        # Listing and verifying checkpoints reads and hashes files: never on the UI's event loop.
        for run in await asyncio.to_thread(self.source.list_runs, self.runs_dir):
            self.runs[run.run_id] = run
            run_label = Text(
                middle(run.run_id, label_width), style="" if run.status != "completed" else "dim"
            )
            node = tree.root.add(run_label, data=(run.run_id, None), expand=run.run_id == run_id)
            if run.run_id == run_id:
                selected = node
                await self._load(run.run_id)
                for agent in self._agents(run.run_id):
                    child = node.add_leaf(agent, data=(run.run_id, agent))
                    if agent == agent_id:
                        selected = child
        if selected is None and tree.root.children:
            selected = tree.root.children[0]
        if selected is not None:
            await self._load(selected.data[0] if selected.data else "")
            self._show(*(selected.data or ("", None)))
            # after the tree's own first highlight (of its top line), so the pick is what stays shown
            self.call_after_refresh(tree.move_cursor, selected)
        table.focus()

    def _agents(self, run_id: str) -> list[str]:
        first_seen: dict[str, tuple[int, int]] = {}
        for entry in self._checkpoints_of(run_id):
            first_seen.setdefault(entry.agent_id, (entry.layer, entry.seq))
        return sorted(first_seen, key=first_seen.__getitem__)  # layer order, then order of start

    def _checkpoints_of(self, run_id: str) -> list[CheckpointInfo]:
        """A run's checkpoints once :meth:`_load` has read them (empty before)."""
        return self.checkpoints.get(run_id, [])

    async def _load(self, run_id: str) -> None:
        """Read and verify a run's checkpoints in a worker thread, once."""
        run = self.runs.get(run_id)
        if run_id in self.checkpoints or run is None:
            return
        entries = await asyncio.to_thread(self.source.list_checkpoints, run.path)
        self.checkpoints[run_id] = distinct(entries)

    @on(Tree.NodeExpanded)
    async def _expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        node = event.node
        if node.data is None or node.data[1] is not None or node.children:
            return
        await self._load(node.data[0])
        for agent in self._agents(node.data[0]):
            node.add_leaf(agent, data=(node.data[0], agent))

    @on(Tree.NodeHighlighted)
    async def _highlighted(self, event: Tree.NodeHighlighted[NodeData]) -> None:
        if event.node.data is not None:
            await self._load(event.node.data[0])
            self._show(*event.node.data)

    def _show(self, run_id: str, agent_id: str | None) -> None:
        self.current_run = run_id
        entries = [e for e in self._checkpoints_of(run_id) if agent_id is None or e.agent_id == agent_id]
        self.shown = sorted(entries, key=lambda e: e.seq)
        table = self.query_one(DataTable)
        table.clear()
        for entry in self.shown:
            ok = entry.status == "ok"
            state = Text("ok", style="green") if ok else Text("corrupt", style="bold red")
            table.add_row(
                state,
                f"t{entry.turn}",
                short(entry.agent_id, 14),
                clock(entry.created_at),
                Text(f"{entry.agent_cost_usd:.2f}", justify="right"),
                Text(count(entry.tokens), justify="right"),
                key=entry.id,
            )
        if self.shown:
            table.move_cursor(row=len(self.shown) - 1)
            self._preview(self.shown[-1])
        else:
            self._preview(None)

    @on(DataTable.RowHighlighted, "#checkpoint-table")
    def _row(self, event: DataTable.RowHighlighted) -> None:
        entry = next((e for e in self.shown if e.id == event.row_key.value), None)
        self._preview(entry)

    @on(DataTable.RowSelected, "#checkpoint-table")
    def _row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_resume_here()

    def selected(self) -> CheckpointInfo | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def _newest_of_agent(self, entry: CheckpointInfo) -> bool:
        own = [e.seq for e in self._checkpoints_of(self.current_run or "") if e.agent_id == entry.agent_id]
        return entry.seq == max(own, default=entry.seq)

    def is_latest(self, entry: CheckpointInfo) -> bool:
        good = [e.seq for e in self._checkpoints_of(self.current_run or "") if e.status == "ok"]
        return bool(good) and entry.seq == max(good)

    def _preview(self, entry: CheckpointInfo | None) -> None:
        preview = self.query_one("#preview", Static)
        hint = self.query_one("#resume-hint", Static)
        button = self.query_one("#resume", Button)
        if entry is None:
            preview.update("No checkpoints here yet: one is written after every completed turn.")
            hint.update("")
            button.disabled = True
            return
        if entry.status != "ok":
            preview.update(
                f"This checkpoint is corrupt ({entry.problem or 'checksum mismatch'}) and is skipped."
            )
            hint.update("")
            button.disabled = True
            return
        state = agent_state_at(entry, self._newest_of_agent(entry), self.runs.get(self.current_run or ""))
        head = (
            f"{entry.agent_id} · turn {entry.turn} · {clock(entry.created_at)} · {state}"
            f" · agent {money(entry.agent_cost_usd)} · run {money(entry.cost_usd)},"
            f" {count(entry.tokens)} tokens so far\n\n"
        )
        preview.update(head + "(reading the checkpoint…)")
        run = self.runs.get(self.current_run or "")
        if run is not None:
            self._show_exchange(run.path, entry, head)
        latest = self.is_latest(entry)
        button.label = "Resume in place" if latest else "Fork from here"
        # A fork's cap covers the fork only (its spend starts at the checkpoint's): say so before
        # the user picks it, since the parent and its fork together can bill more than one cap.
        hint.update(
            "latest checkpoint: the run continues"
            if latest
            else f"fork: a new run from {money(entry.cost_usd)} spent, with its own cap; "
            "both runs together can exceed one cap"
        )
        button.disabled = False

    @work(group="preview", exclusive=True)  # a newer selection's preview supersedes this one
    async def _show_exchange(self, run_dir: Path, entry: CheckpointInfo, head: str) -> None:
        """The checkpoint's last exchange, loaded (its whole chain verified) in a worker thread."""
        exchange = await asyncio.to_thread(self.source.last_exchange, run_dir, entry.id)
        if exchange is None:
            body = "(no preview of the last exchange)"
        else:
            reply = (
                exchange.reply
                if len(exchange.reply) <= PREVIEW_CHARS
                else "…" + exchange.reply[-PREVIEW_CHARS:]
            )
            body = f"▸ {short(exchange.prompt, 400)}\n\n◂ {reply or '(no text)'}"
        if self.selected() == entry:
            self.query_one("#preview", Static).update(head + body)

    @on(Button.Pressed, "#resume")
    def _resume_pressed(self) -> None:
        self.action_resume_here()

    def action_resume_here(self) -> None:
        entry = self.selected()
        if entry is None or entry.status != "ok" or self.current_run is None:
            self.notify("Pick a good checkpoint first.", severity="warning")
            return
        checkpoint = None if self.is_latest(entry) else entry.id
        self.app.post_message(ResumeRequested(self.current_run, checkpoint))
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
