"""The top line: program, run id, layer, status (with a clean stop's countdown) and elapsed time,
and SIMULATED when it is."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widget import Widget

from core.view import RunInfo
from tui.format import elapsed, short
from tui.widgets.colors import style

Clock = Callable[[], float]


class RunHeader(Widget):
    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(
        self, info: RunInfo, *, clock: Clock, attached: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.info = info
        self.clock = clock
        self.attached = attached  # "attached · owner pid N": the run is another process's

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh)

    def show(self, info: RunInfo) -> None:
        self.info = info
        self.refresh()

    @property
    def elapsed_s(self) -> float:
        """How long the run has been running: earlier attempts and this one, not the time it was stopped."""
        info = self.info
        since = info.running_since if info.running_since is not None else info.started_at
        if since is None:
            return 0.0
        end = info.finished_at if info.finished_at is not None else self.clock()
        return info.active_before_s + max(0.0, end - since)

    def render(self) -> Text:
        """Everything when it fits; on a narrow terminal the app name, then the program, go first."""
        info = self.info
        right = Text("SIMULATED", style=style(self.app, "warning", bold=True)) if info.simulated else Text()
        width = self.content_region.width or 80
        room = width - right.cell_len - 1
        left = self._left(app_name=True, program=True, run_width=None)
        for variant in ((False, True, None), (False, True, 18), (False, False, 18), (False, False, 8)):
            if left.cell_len <= room:
                break
            left = self._left(app_name=variant[0], program=variant[1], run_width=variant[2])
        left.truncate(max(0, room), overflow="ellipsis")
        return Text.assemble(left, " " * max(1, width - left.cell_len - right.cell_len), right)

    def _left(self, *, app_name: bool, program: bool, run_width: int | None) -> Text:
        info = self.info
        sep = (" ─ ", "dim")
        status_role = {
            "running": "success",
            "completed": "success",
            "interrupted": "warning",
            "budget_exhausted": "warning",
        }.get(info.status, "error" if info.finished_at else "foreground")
        parts: list[Text | tuple[str, object] | str] = []
        if app_name:
            parts += [("research-orchestrator", style(self.app, "primary", bold=True)), sep]
        if program and info.program:
            parts += [(info.program, style(self.app, "foreground", bold=not app_name)), sep]
        run_id = info.run_id if run_width is None else short(info.run_id, run_width)
        parts += [(f"run {run_id}", "dim"), sep]
        if self.attached:
            parts += [(self.attached, style(self.app, "accent", bold=True)), sep]
        if info.parent:
            parent = info.parent.get("run_id", "?")
            parent = parent if run_width is None else short(parent, run_width)
            parts += [(f"fork of {parent}", style(self.app, "accent")), sep]
        if info.layers:
            parts += [f"layer {info.layer or 1}/{info.layers}", sep]
        parts += [(info.status.replace("_", " "), style(self.app, status_role, bold=True)), sep]
        left = info.stop_left_s(self.clock())
        if left is not None and info.stopping is not None:
            calls = len(info.stopping.in_flight)
            waiting = f"stopping: {calls} call{'' if calls == 1 else 's'} finishing, {left:.0f} s left"
            parts += [(waiting, style(self.app, "warning", bold=True)), sep]
        if info.batch is not None and not info.finished:
            parts += [(info.batch.text(self.clock()), style(self.app, "accent")), sep]
        parts.append(elapsed(self.elapsed_s))
        return Text.assemble(*parts, no_wrap=True)  # type: ignore[arg-type]
