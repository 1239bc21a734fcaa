"""The control surface of a run, shared by the orchestrator and its front ends.

Front ends (the terminal app, the headless CLI) depend on this protocol, not on the
orchestrator's internals: control flows down through these methods, information flows up as
events on ``bus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.errors import (
    EXIT_BUDGET_EXHAUSTED,
    EXIT_COMPLETED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    UserError,
)
from core.status import AgentStatus as AgentStatus  # (their home is core.status; kept importable here)
from core.status import RunStatus as RunStatus

if TYPE_CHECKING:
    from core.events import EventBus


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
    AgentStatus.SKIPPED: "⤼",
}
"""One glyph per status, for every front end (the table, the panes, the headless output)."""


EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.COMPLETED: EXIT_COMPLETED,
    RunStatus.BUDGET_EXHAUSTED: EXIT_BUDGET_EXHAUSTED,
    RunStatus.FAILED: EXIT_FAILED,
    RunStatus.KILLED: EXIT_FAILED,
    RunStatus.INTERRUPTED: EXIT_INTERRUPTED,
}


class RunAlreadyComplete(UserError):
    """``resume`` of a run that completed: nothing to do, and nothing is changed (exit code 0)."""

    exit_code = EXIT_COMPLETED


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: RunStatus
    run_dir: Path
    cost_usd: float
    message: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, EXIT_FAILED)

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

    def kill(self, agent_id: str, *, now: bool = True) -> bool:
        """End an agent; ``now`` false lets its call in flight finish its turn and be saved first."""
        ...

    def stop(self, *, now: bool = False) -> None:
        """Stop the run cleanly (the calls in flight finish their turn, within the grace); ``now``
        cancels them."""
        ...

    def in_flight_usd(self, agent_id: str | None = None) -> float | None:
        """What stopping now counts for the calls in flight (of ``agent_id``); None when not known here."""
        ...

    def agent_status(self, agent_id: str) -> AgentStatus: ...
