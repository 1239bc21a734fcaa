"""The owner's side of attaching: the run as its journal on disk holds it, ready to hand over.

:class:`LiveState` folds exactly the events the journal has written (the journal's
``on_written``) into a :class:`~core.view.RunView`, with the journal's size beside it. A snapshot
is that pair: a handful of events that rebuild the same view from nothing (``run_started`` with
every agent's figures as seeds, the retained incidents, the layer, the budget, the tail of each
agent's stream) and the offset to follow the journal from. A front end folds the snapshot, then
the journal after the offset, with the same reducer, and arrives where the owner is.
"""

from __future__ import annotations

import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

from core import events as ev
from core.control import RunControl
from core.remote.channel import ControlChannel
from core.view import INCIDENTS_KEPT, RunView

TAIL_CHARS = 3000
"""Stream text kept per agent, so an attached pane opens with context rather than empty."""


class LiveState:
    """The written part of a run, folded; an owner keeps one and serves its :meth:`snapshot`."""

    def __init__(self) -> None:
        self.view = RunView()
        self.offset = 0
        self.listeners: list[Callable[[int], None]] = []
        self._incidents: deque[ev.Event] = deque(maxlen=INCIDENTS_KEPT)
        self._tails: dict[str, str] = {}
        self._channel: ControlChannel | None = None

    def watched(self) -> bool:
        """Whether an app follows the run now (the journal then writes the stream out promptly)."""
        return self._channel is not None and self._channel.watchers > 0

    def written(self, events: list[ev.Event], offset: int) -> None:
        """The journal wrote ``events`` and now holds ``offset`` bytes (called inline, cheap)."""
        for event in events:
            if isinstance(event, ev.TextStreamed):
                if event.agent_id is not None:
                    tail = self._tails.get(event.agent_id, "") + event.text
                    self._tails[event.agent_id] = tail[-TAIL_CHARS:]
                continue
            if self.view.apply(event).incident is not None:
                self._incidents.append(event)
        self.offset = offset
        for listener in self.listeners:
            listener(offset)

    @contextlib.asynccontextmanager
    async def serving(
        self, control: RunControl, agents: Collection[str], socket_path: Path
    ) -> AsyncIterator[ControlChannel]:
        """Serve the run's control channel (snapshots from this state) while the block runs."""
        channel = ControlChannel(socket_path, control, agents, self.snapshot)
        self.listeners.append(channel.journal_advanced)
        self._channel = channel
        try:
            async with channel.serving():
                yield channel
        finally:
            self._channel = None
            self.listeners.remove(channel.journal_advanced)

    def snapshot(self) -> dict[str, Any]:
        return {"offset": self.offset, "events": [e.to_json() for e in self.seed_events()]}

    def seed_events(self) -> list[ev.Event]:
        """Events whose fold, from an empty view, equals this view (see the module's docstring)."""
        view = self.view
        run = view.run
        if not run.run_id:
            return []  # nothing written yet: the follower reads run_started from the journal
        replayed = Counter(e.agent_id for e in self._incidents if isinstance(e, ev.RetryScheduled))
        seeds = {
            row.agent_id: ev.AgentSeed(
                status=row.status.value,
                turns=row.turn,
                searches=row.searches,
                cost_usd=row.cost_usd,
                retries=row.retries - replayed[row.agent_id],
                report_path=row.report_path,
                error=row.error,
                note=row.note,
                started=row.started,
            )
            for row in view.agents.values()
        }
        out: list[ev.Event] = [
            ev.RunStarted(
                run_id=run.run_id,
                at=run.started_at or 0.0,
                program=run.program,
                question=run.question,
                run_dir=run.run_dir,
                agents=tuple((row.agent_id, row.layer, row.title) for row in view.agents.values()),
                seeds=seeds,
                parent=run.parent,
                resumed=run.resumed,
                simulated=run.simulated,
                started_at=run.started_at,
            ),
            *self._incidents,
        ]
        if run.layer:
            out.append(ev.LayerStarted(run_id=run.run_id, layer=run.layer))
        if view.budget is not None:
            out.append(view.budget)
        if run.finished_at is not None:
            out.append(
                ev.RunFinished(
                    run_id=run.run_id,
                    at=run.finished_at,
                    status=run.status,
                    cost_usd=run.cost_usd,
                    message=run.message,
                    report_path=run.report_path,
                )
            )
        out.extend(
            ev.TextStreamed(
                run_id=run.run_id, agent_id=agent_id, layer=view.agents[agent_id].layer, text=text
            )
            for agent_id, text in self._tails.items()
            if agent_id in view.agents
        )
        return out
