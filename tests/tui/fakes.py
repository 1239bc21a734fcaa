"""A scripted run for the app's tests: real EventBus, recorded control calls, frozen timestamps.

``FakeRun`` implements ``core.control.RunControl``: its ``run()`` publishes a script of core events
(each stamped with a fixed time), then stays active until ``stop()``, like a run whose agents are
still working. Pause/resume/kill follow the orchestrator's rules (:mod:`core.lifecycle`) and publish
the events it would; its statuses come from the same fold.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from core import events as ev
from core.catalogue import RunEntry
from core.control import AgentStatus, RunOutcome, RunStatus
from core.events import EventBus
from core.lifecycle import AgentRow, can_kill, can_resume, pause_event
from core.persistence.checkpoints import CheckpointInfo
from core.view import RunView
from tests.sample_events import NOW, RUN_ID, T0, at, budget, sodium_script
from tui.data import Exchange

# the script's names, still importable from here by the app's tests
__all__ = ["NOW", "RUN_ID", "T0", "FakeRun", "FakeRunSource", "at", "budget", "sodium_script"]

IN_FLIGHT_USD = 0.9  # what stopping the fake run now would count (the sketch's reserved dollars)


class FakeRun:
    """A ``RunControl`` whose run publishes ``script`` and then waits for ``stop()``."""

    def __init__(
        self,
        script: list[ev.Event] | None = None,
        *,
        run_dir: Path | None = None,
        finish: bool = False,
        pause_delay: float = 0.05,
    ) -> None:
        self.run_id = RUN_ID
        # a real directory: the app keeps the run's run.log in it while the run is open
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="fake-run-")) / RUN_ID
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.bus = EventBus()
        self.script = sodium_script() if script is None else script
        self.finish = finish
        self.pause_delay = pause_delay
        self.hold_pauses = False  # True: a pausing agent stays so until the test calls complete_pause
        self.calls: list[tuple[str, str | None]] = []
        self.stop_now: list[bool] = []  # each stop's ``now``
        self.kill_now: list[bool] = []  # each kill's ``now``
        self.view = RunView()  # statuses come from the one fold, as the orchestrator's do
        self.bus.listen(self.view.apply)
        self.script_done = asyncio.Event()
        self.stopped = asyncio.Event()
        self.saved_state = False

    def _publish(self, event: ev.Event) -> None:
        self.bus.publish(event)

    async def run(self) -> RunOutcome:
        for index, event in enumerate(self.script):
            self._publish(event)
            if index % 8 == 7:
                await asyncio.sleep(0)
        self.script_done.set()
        if not self.finish:
            await self.stopped.wait()
            self.saved_state = True
            status = RunStatus.INTERRUPTED
        else:
            status = RunStatus.COMPLETED
        self._publish(ev.RunFinished(run_id=RUN_ID, at=at(2472), status=status.value, cost_usd=7.24))
        return RunOutcome(status=status, run_dir=self.run_dir, cost_usd=7.24)

    # --- RunControl ---------------------------------------------------------------------------

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self.view.status_of(agent_id)

    def _row(self, agent_id: str) -> AgentRow:
        return self.view.agents.get(agent_id) or AgentRow(agent_id, 0)

    def pause(self, agent_id: str) -> bool:
        """As the orchestrator does (the same rules): a pending agent is paused at once, a working
        one pauses when its call in flight ends (after ``pause_delay``, here, or when the test says so)."""
        self.calls.append(("pause", agent_id))
        event_type = pause_event(self._row(agent_id))
        if event_type is None:
            return False
        self._publish(event_type(run_id=RUN_ID, agent_id=agent_id, at=at(2400)))
        if event_type is ev.AgentPausing and not self.hold_pauses:
            asyncio.get_running_loop().call_later(self.pause_delay, self.complete_pause, agent_id)
        return True

    def complete_pause(self, agent_id: str) -> None:
        """The call in flight of a pausing agent ends: it is paused (a test holding pauses calls it)."""
        if self.agent_status(agent_id) == AgentStatus.PAUSING:
            self._publish(ev.AgentPaused(run_id=RUN_ID, agent_id=agent_id, at=at(2401)))

    def resume(self, agent_id: str) -> bool:
        self.calls.append(("resume", agent_id))
        if not can_resume(self._row(agent_id)):
            return False
        self._publish(ev.AgentResumed(run_id=RUN_ID, agent_id=agent_id, at=at(2402)))
        return True

    def kill(self, agent_id: str, *, now: bool = True) -> bool:
        self.calls.append(("kill", agent_id))
        self.kill_now.append(now)
        if not can_kill(self._row(agent_id)):
            return False
        self._publish(
            ev.AgentKilled(
                run_id=RUN_ID,
                agent_id=agent_id,
                at=at(2403),
                report_path=f"runs/{RUN_ID}/reports/{agent_id}.md",
            )
        )
        return True

    def stop(self, *, now: bool = False) -> None:
        self.calls.append(("stop", None))
        self.stop_now.append(now)
        self.stopped.set()

    def in_flight_usd(self, agent_id: str | None = None) -> float | None:
        return IN_FLIGHT_USD if agent_id is None else IN_FLIGHT_USD / 2


class FakeRunSource:
    """Runs and checkpoints for the browser, without a runs directory."""

    def __init__(self) -> None:
        self.runs = [
            RunEntry(RUN_ID, "interrupted", 7.24, T0, "sodium-ion-2026", None, Path("runs") / RUN_ID),
            RunEntry(
                "20261123-181500-sodium-ion-2026-9b1c",
                "completed",
                31.02,
                T0 - 60_000,
                "sodium-ion-2026",
                None,
                Path("runs") / "20261123-181500-sodium-ion-2026-9b1c",
            ),
        ]
        self.checkpoints: dict[str, list[CheckpointInfo]] = {
            RUN_ID: [
                CheckpointInfo(
                    id=f"cp-{seq:04d}-{agent}-t{turn}",
                    seq=seq,
                    agent_id=agent,
                    layer=1,
                    turn=turn,
                    created_at=at(300 * seq),
                    status=status,
                    cost_usd=cost,
                    tokens=tokens,
                    agent_status="running",
                    path=Path("runs") / RUN_ID / "checkpoints" / f"cp-{seq:04d}-{agent}-t{turn}.json",
                    problem=None if status == "ok" else "bad checksum",
                )
                for seq, agent, turn, status, cost, tokens in (
                    (1, "market", 1, "ok", 0.42, 41_200),
                    (2, "chemistry", 1, "ok", 0.81, 80_900),
                    (3, "market", 2, "ok", 1.37, 126_400),
                    (4, "market", 3, "corrupt", 1.90, 171_000),
                    (5, "chemistry", 2, "ok", 2.55, 230_100),
                    (6, "market", 4, "ok", 3.12, 284_800),
                )
            ]
        }
        self.exchange_requests: list[str] = []

    def list_runs(self, runs_dir: Path) -> list[RunEntry]:
        return list(self.runs)

    def list_checkpoints(self, run_dir: Path) -> list[CheckpointInfo]:
        return list(self.checkpoints.get(run_dir.name, []))

    def last_exchange(self, run_dir: Path, checkpoint_id: str) -> Exchange | None:
        self.exchange_requests.append(checkpoint_id)
        return Exchange(
            prompt="Go deeper: search for the strongest evidence on the points that are still uncertain.",
            reply="Sodium-ion cell prices fell 18% year on year [1]. Grid tenders in China now specify "
            "sodium-ion for 20% of new capacity, and two Nordic utilities have signed offtake agreements.",
        )
