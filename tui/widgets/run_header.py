"""The top line: program, run id, layer, status and elapsed time, and SIMULATED when it is."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widget import Widget

from tui.format import elapsed
from tui.state import RunInfo
from tui.widgets.colors import style

Clock = Callable[[], float]


class RunHeader(Widget):
    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, info: RunInfo, *, clock: Clock, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info = info
        self.clock = clock

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh)

    def show(self, info: RunInfo) -> None:
        self.info = info
        self.refresh()

    @property
    def elapsed_s(self) -> float:
        info = self.info
        if info.started_at is None:
            return 0.0
        end = info.finished_at if info.finished_at is not None else self.clock()
        return end - info.started_at

    def render(self) -> Text:
        info = self.info
        sep = " ─ "
        status_role = {"running": "success", "completed": "success", "interrupted": "warning",
                       "budget_exhausted": "warning"}.get(info.status, "error" if info.finished_at else "foreground")
        left = Text(no_wrap=True, overflow="ellipsis")
        left.append("research-orchestrator", style=style(self.app, "primary", bold=True))
        if info.program:
            left.append(sep + info.program)
        left.append(sep + f"run {info.run_id}", style="dim")
        if info.layers:
            left.append(sep + f"layer {info.layer or 1}/{info.layers}")
        left.append(sep)
        left.append(info.status.replace("_", " "), style=style(self.app, status_role, bold=True))
        left.append(sep + elapsed(self.elapsed_s))
        right = Text("SIMULATED", style=style(self.app, "warning", bold=True)) if info.simulated else Text()
        width = self.content_region.width or 80
        gap = width - left.cell_len - right.cell_len
        if gap < 1:
            left.truncate(max(0, width - right.cell_len - 1), overflow="ellipsis")
            gap = max(1, width - left.cell_len - right.cell_len)
        return Text.assemble(left, " " * gap, right)
