"""Statuses and the control surface of a run, shared by the orchestrator and its front ends.

Front ends (the terminal app, the headless CLI) depend on this protocol, not on the
orchestrator's internals: control flows down through these methods, information flows up as
events on ``bus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # events.py imports the statuses from here
    from core.events import EventBus


class AgentStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    COMPLETED = "completed"
    REFUSED = "refused"
    BUDGET_EXHAUSTED = "budget_exhausted"
    FAILED = "failed"
    KILLED = "killed"
    WAITING_FOR_BUDGET = "waiting_for_budget"  # its call would fit once calls in flight settle
    INTERRUPTED = "interrupted"  # the run stopped while it worked; it continues on resume

    @property
    def is_final(self) -> bool:
        return self in FINAL_AGENT_STATUSES

    @property
    def is_active(self) -> bool:
        """Started and not yet ended: it holds (or waits on) a live conversation."""
        return self in ACTIVE_AGENT_STATUSES


FINAL_AGENT_STATUSES = frozenset(
    {
        AgentStatus.COMPLETED,
        AgentStatus.REFUSED,
        AgentStatus.BUDGET_EXHAUSTED,
        AgentStatus.FAILED,
        AgentStatus.KILLED,
    }
)
ACTIVE_AGENT_STATUSES = frozenset(
    {AgentStatus.RUNNING, AgentStatus.PAUSING, AgentStatus.PAUSED, AgentStatus.WAITING_FOR_BUDGET}
)

GLYPHS: dict[AgentStatus, str] = {
    AgentStatus.PENDING: "○",
    AgentStatus.RUNNING: "●",
    AgentStatus.PAUSING: "‖",
    AgentStatus.PAUSED: "‖",
    AgentStatus.WAITING_FOR_BUDGET: "…",
    AgentStatus.INTERRUPTED: "◌",
    AgentStatus.COMPLETED: "✓",
    AgentStatus.REFUSED: "⊘",
    AgentStatus.BUDGET_EXHAUSTED: "$",
    AgentStatus.FAILED: "✗",
    AgentStatus.KILLED: "☠",
}
"""One glyph per status, for every front end (the table, the panes, the headless output)."""


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    FAILED = "failed"
    KILLED = "killed"
    INTERRUPTED = "interrupted"


EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.COMPLETED: 0,
    RunStatus.BUDGET_EXHAUSTED: 3,
    RunStatus.FAILED: 4,
    RunStatus.KILLED: 4,
    RunStatus.INTERRUPTED: 130,
}
EXIT_INVALID = 2


class RunAlreadyComplete(Exception):
    """``resume`` of a run that completed: nothing to do, and nothing is changed (exit code 0)."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: RunStatus
    run_dir: Path
    cost_usd: float
    message: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 4)

    def describe(self) -> str:
        """The line a front end leaves on the terminal when the run ends."""
        return f"{self.status.value}: run {self.run_dir.name} in {self.run_dir} · ${self.cost_usd:.4f}"


class RunControl(Protocol):
    """What a front end may do with a run."""

    run_id: str
    run_dir: Path
    bus: EventBus

    async def run(self) -> RunOutcome: ...

    def pause(self, agent_id: str) -> bool: ...

    def resume(self, agent_id: str) -> bool: ...

    def kill(self, agent_id: str) -> bool: ...

    def stop(self) -> None: ...

    def agent_status(self, agent_id: str) -> AgentStatus: ...
