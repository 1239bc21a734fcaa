"""The statuses of an agent and of a run: the one enum of each, below everything that carries them.

Events carry these (``agent_finished``, ``run_finished``, the seeds of ``run_started``), the
lifecycle (:mod:`core.lifecycle`) moves an agent between them, and every front end shows them; so
they live here, at the bottom, rather than beside the control surface (:mod:`core.control`).
In JSON (the journal, ``summary.json``, checkpoints) a status is its string value.
"""

from __future__ import annotations

from enum import StrEnum


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
    SKIPPED = "skipped"  # never started: every report it was to read is of an agent that failed

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
        AgentStatus.SKIPPED,
    }
)
ACTIVE_AGENT_STATUSES = frozenset(
    {AgentStatus.RUNNING, AgentStatus.PAUSING, AgentStatus.PAUSED, AgentStatus.WAITING_FOR_BUDGET}
)
REPORT_STATUSES = frozenset({AgentStatus.COMPLETED, AgentStatus.REFUSED, AgentStatus.BUDGET_EXHAUSTED})
"""The endings of an agent that wrote its report (``agent_finished``); the others are failures."""


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    FAILED = "failed"
    KILLED = "killed"
    INTERRUPTED = "interrupted"
