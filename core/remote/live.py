"""The owner's side of attaching: the run as its journal on disk holds it, ready to hand over.

:class:`LiveState` folds exactly the events the journal has written (the journal's
``on_written``) into a :class:`~core.view.RunView`, with the journal's size beside it. A snapshot
is that pair: the view's state as a handful of events that set it (``run_started`` whose seeds are
every agent's row as it stands, the retry and error log as one ``incidents_recalled``, which is
shown and never folded, the layer, the budget, the tail of each agent's stream) and the offset to
follow the journal from. A front end folds the snapshot, then the journal after the offset, with
the same reducer, and arrives where the owner is: the rows are copied, never rebuilt by replaying
what changed them (a replayed charge would count twice).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any, assert_never

from core import events as ev
from core.control import RunControl
from core.lifecycle import seed_of
from core.remote.channel import ControlChannel
from core.status import RunStatus
from core.view import INCIDENTS_KEPT, BatchLine, RunView

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
            match event:
                case ev.TextStreamed():  # not folded: the snapshot keeps the tail of each stream
                    if event.agent_id is not None:
                        tail = self._tails.get(event.agent_id, "") + event.text
                        self._tails[event.agent_id] = tail[-TAIL_CHARS:]
                case (
                    ev.RunStarted()
                    | ev.RetryScheduled()
                    | ev.ApiErrorRaised()
                    | ev.AgentFailed()
                    | ev.AttemptCharged()
                    | ev.DiskErrorRaised()
                    | ev.BudgetCapReached()
                    | ev.StopReasonUnhandled()
                    | ev.SubscriberFailed()
                    | ev.LayerStarted()
                    | ev.LayerFinished()
                    | ev.RunFinished()
                    | ev.AgentStarted()
                    | ev.AttemptAbandoned()
                    | ev.SearchIssued()
                    | ev.SearchResultsReceived()
                    | ev.CitationReceived()
                    | ev.TurnCompleted()
                    | ev.AgentPausing()
                    | ev.AgentPaused()
                    | ev.AgentResumed()
                    | ev.AgentInterrupted()
                    | ev.AgentBudgetWaitStarted()
                    | ev.AgentBudgetWaitEnded()
                    | ev.AgentKilled()
                    | ev.AgentSkipped()
                    | ev.AgentFinished()
                    | ev.ContextCompacted()
                    | ev.BudgetUpdated()
                    | ev.CheckpointSaved()
                    | ev.IncidentsRecalled()
                    | ev.RunStopping()
                    | ev.BatchSubmitted()
                    | ev.BatchProgress()
                    | ev.BatchEnded()
                    | ev.AgentBatched()
                ):  # in the view, which the snapshot copies; the log's lines are recalled as they are
                    if self.view.apply(event).incident is not None:
                        self._incidents.append(event)
                case _:
                    assert_never(event)
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
        """Events that set an empty view to this one (see the module's docstring)."""
        view = self.view
        run = view.run
        if not run.run_id:
            return []  # nothing written yet: the follower reads run_started from the journal
        out: list[ev.Event] = [
            ev.RunStarted(
                run_id=run.run_id,
                at=run.running_since or run.started_at or 0.0,  # this attempt's start: the app's clock
                program=run.program,
                question=run.question,
                run_dir=run.run_dir,
                agents=tuple((row.agent_id, row.layer, row.title) for row in view.agents.values()),
                seeds={row.agent_id: seed_of(row) for row in view.agents.values()},
                parent=run.parent,
                resumed=run.resumed,
                simulated=run.simulated,
                started_at=run.started_at,
                active_s=run.active_before_s,
            )
        ]
        if self._incidents:
            out.append(ev.IncidentsRecalled(run_id=run.run_id, incidents=tuple(self._incidents)))
        if run.layer:
            out.append(ev.LayerStarted(run_id=run.run_id, layer=run.layer))
        if view.budget is not None:
            out.append(view.budget)
        if run.stopping is not None:
            out.append(run.stopping)
        for line in view.live_batches:  # each batch layer's batch as the header and table show it
            out.extend(_batch_seeds(run.run_id, line, time.time()))
        if run.finished_at is not None:
            out.append(
                ev.RunFinished(
                    run_id=run.run_id,
                    at=run.finished_at,
                    status=RunStatus(run.status),
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


def _batch_seeds(run_id: str, line: BatchLine, now: float) -> list[ev.Event]:
    """The events that make a view show ``line`` as it stands."""
    submitted = ev.BatchSubmitted(
        run_id=run_id, layer=line.layer, at=line.submitted_at, batch_id=line.batch_id, requests=line.requests
    )
    counts, elapsed = dict(line.request_counts), line.elapsed_s(now)
    if line.ended_at is not None:
        ended = ev.BatchEnded(
            run_id=run_id, layer=line.layer, at=line.ended_at, batch_id=line.batch_id,
            request_counts=counts, elapsed_s=elapsed,
        )  # fmt: skip
        return [submitted, ended]
    wait = None if line.next_poll_at is None else max(0.0, line.next_poll_at - now)
    progress = ev.BatchProgress(
        run_id=run_id, layer=line.layer, at=now, batch_id=line.batch_id, processing_status="in_progress",
        request_counts=counts, elapsed_s=elapsed, next_poll_s=wait,
    )  # fmt: skip
    return [submitted, progress]
