"""A run the app can show before it exists: its agents at once, "connecting" while it is assembled.

Assembling a run imports its composition root (:mod:`core.runner`) and with it the SDK, over a
second of CPU (docs/ARCHITECTURE.md, "Layers"). The terminal app is handed a
:class:`StartingRun` instead: the agents it will run (read from the config, already validated)
and a bus, so the app draws its first frame at once. :meth:`StartingRun.assembled` then imports
the root in a worker thread, off the app's event loop, and starts the run on the same bus; until it
is done, the agents cannot be paused or killed (nothing has been sent), and a stop is kept and
carried out as soon as the run exists (so it ends interrupted, with nothing sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.control import AgentStatus, RunControl, RunOutcome
from core.events import EventBus
from core.view import AgentRow, RunInfo

if TYPE_CHECKING:
    from core.config.model import ResearchConfig

Start = Callable[[EventBus], Awaitable[RunControl]]
"""Starts the run on the given bus (the composition root is imported by then)."""
LoadStart = Callable[[], Start]
"""Imports the composition root and returns how to start the run: called in a worker thread."""

CONNECTING = "connecting"
"""The header's status while the run is assembled."""
NEW_RUN_ID = "(new)"
"""The header's run id until a new run has one (it is made when the run directory is)."""


def new_run(load: LoadStart, config: ResearchConfig, *, runs_dir: Path, simulated: bool) -> StartingRun:
    """A new run of ``config``: its program and agents shown, every agent pending, while it starts."""
    preview = RunInfo(
        run_id=NEW_RUN_ID,
        program=config.program.name,
        question=config.program.question,
        status=CONNECTING,
        layers=len(config.layers),
        simulated=simulated,
    )
    agents = tuple(AgentRow(agent.id, agent.layer, agent.title) for agent in config.agents())
    return StartingRun(load, runs_dir=runs_dir, preview=preview, agents=agents)


def resumed_run(load: LoadStart, run_ref: str, *, runs_dir: Path) -> StartingRun:
    """A run being resumed: its rows come with its ``run_started`` event, which seeds them."""
    return StartingRun(load, runs_dir=runs_dir, preview=RunInfo(run_id=run_ref, status=CONNECTING))


class StartingRun:
    """A :class:`~core.control.RunControl` whose run is still being assembled; then the run itself."""

    def __init__(
        self, load: LoadStart, *, runs_dir: Path, preview: RunInfo, agents: tuple[AgentRow, ...] = ()
    ) -> None:
        self.bus = EventBus()
        self.runs_dir = runs_dir
        self.preview = preview
        """What the header shows until the run's own ``run_started`` event."""
        self.agents = agents
        """The rows the agents table shows until then (a new run's agents, all pending)."""
        self._load = load
        self._assembly: asyncio.Task[RunControl] | None = None
        self._run: RunControl | None = None
        self._stop_asked = False
        self.run_id = preview.run_id  # the run's own, once assembled
        self.run_dir = runs_dir

    async def assembled(self) -> RunControl:
        """The run, once assembled (its start's errors, such as a missing API key, are raised here)."""
        if self._assembly is None:
            self._assembly = asyncio.get_running_loop().create_task(self._assemble())
        return await self._assembly

    async def _assemble(self) -> RunControl:
        start = await asyncio.to_thread(self._load)  # the SDK's import, while the app draws
        run = await start(self.bus)
        self._run, self.run_id, self.run_dir = run, run.run_id, run.run_dir
        if self._stop_asked:
            run.stop()
        return run

    async def run(self) -> RunOutcome:
        return await (await self.assembled()).run()

    def pause(self, agent_id: str) -> bool:
        return self._run is not None and self._run.pause(agent_id)

    def resume(self, agent_id: str) -> bool:
        return self._run is not None and self._run.resume(agent_id)

    def kill(self, agent_id: str, *, now: bool = True) -> bool:
        return self._run is not None and self._run.kill(agent_id, now=now)

    def stop(self, *, now: bool = False) -> None:
        if self._run is not None:
            self._run.stop(now=now)
        else:
            self._stop_asked = True  # nothing is in flight yet: any stop is a clean one

    def in_flight_usd(self, agent_id: str | None = None) -> float | None:
        return self._run.in_flight_usd(agent_id) if self._run is not None else 0.0

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self._run.agent_status(agent_id) if self._run is not None else AgentStatus.PENDING
