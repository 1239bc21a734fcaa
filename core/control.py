"""Statuses and the control surface of a run, shared by the orchestrator and its front ends.

Front ends (the terminal app, the headless CLI) depend on this protocol, not on the
orchestrator's internals: control flows down through these methods, information flows up as
events on ``bus``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

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

    @property
    def is_final(self) -> bool:
        return self in FINAL_AGENT_STATUSES


FINAL_AGENT_STATUSES = frozenset(
    {
        AgentStatus.COMPLETED,
        AgentStatus.REFUSED,
        AgentStatus.BUDGET_EXHAUSTED,
        AgentStatus.FAILED,
        AgentStatus.KILLED,
    }
)


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
