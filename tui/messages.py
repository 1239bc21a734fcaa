"""Textual messages the bridge posts: core events, folded into what the widgets need.

Messages that carry a whole current value (a row, the header, the budget) define ``can_replace``
so a backed-up queue delivers only the newest; text and notes never replace each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from core.control import RunOutcome
from core.events import BudgetUpdated
from core.view import AgentRow, Incident, RunInfo


@dataclass
class RunInfoChanged(Message):
    info: RunInfo

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunInfoChanged)


@dataclass
class AgentsListed(Message):
    """The run's whole roster, at start: the table is rebuilt from it."""

    rows: tuple[AgentRow, ...]


@dataclass
class AgentRowChanged(Message):
    row: AgentRow

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AgentRowChanged) and message.row.agent_id == self.row.agent_id


@dataclass
class BudgetChanged(Message):
    budget: BudgetUpdated

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BudgetChanged)


@dataclass
class AgentTextStreamed(Message):
    agent_id: str
    text: str


@dataclass
class AgentNoted(Message):
    """A line for an agent's pane between its text: a search, a pause, an abandoned attempt..."""

    agent_id: str
    kind: str  # search | results | status | abandoned | error | done
    text: str


@dataclass
class AgentTurnEnded(Message):
    """The model stopped streaming for this turn: the pane flushes any word it held back.

    ``continues`` is true when the next call carries on the same answer (``pause_turn`` or
    ``max_tokens``), so the pane must not start a new paragraph.
    """

    agent_id: str
    continues: bool = False


@dataclass
class IncidentLogged(Message):
    incident: Incident


@dataclass
class LayerFinished(Message):
    layer: int


@dataclass
class RunEnded(Message):
    """The run's worker returned (``outcome``) or raised (``error``)."""

    outcome: RunOutcome | None
    error: str | None = None


@dataclass
class ResumeRequested(Message):
    """Resume ``run_id`` in place (``checkpoint_id`` None or the latest) or fork it from a checkpoint."""

    run_id: str
    checkpoint_id: str | None = None


@dataclass
class NewRunRequested(Message):
    config_path: str
    detach: bool = False  # owned by a background process that outlives the app; the app attaches


@dataclass
class AttachRequested(Message):
    """Watch and steer ``run_id``, a live run owned by another process."""

    run_id: str
