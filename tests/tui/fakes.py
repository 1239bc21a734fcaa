"""A scripted run for the app's tests: real EventBus, recorded control calls, frozen timestamps.

``FakeRun`` implements ``core.control.RunControl``: its ``run()`` publishes a script of core events
(each stamped with a fixed time), then stays active until ``stop()``, like a run whose agents are
still working. Pause/resume/kill change its statuses and publish the events the orchestrator would.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from core import events as ev
from core.control import AgentStatus, RunOutcome, RunStatus
from core.events import EventBus
from core.view import RunView
from tests.sample_events import NOW, RUN_ID, T0, at, budget, sodium_script
from tui.data import CheckpointEntry, Exchange, RunEntry

# the script's names, still importable from here by the app's tests
__all__ = ["NOW", "RUN_ID", "T0", "FakeRun", "FakeRunSource", "at", "budget", "sodium_script"]


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
        self.calls: list[tuple[str, str | None]] = []
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

    def pause(self, agent_id: str) -> bool:
        self.calls.append(("pause", agent_id))
        if self.agent_status(agent_id) != AgentStatus.RUNNING:
            return False
        self._publish(ev.AgentPausing(run_id=RUN_ID, agent_id=agent_id, at=at(2400)))
        asyncio.get_running_loop().call_later(self.pause_delay, self._paused, agent_id)
        return True

    def _paused(self, agent_id: str) -> None:
        if self.agent_status(agent_id) == AgentStatus.PAUSING:
            self._publish(ev.AgentPaused(run_id=RUN_ID, agent_id=agent_id, at=at(2401)))

    def resume(self, agent_id: str) -> bool:
        self.calls.append(("resume", agent_id))
        if self.agent_status(agent_id) not in (AgentStatus.PAUSED, AgentStatus.PAUSING):
            return False
        self._publish(ev.AgentResumed(run_id=RUN_ID, agent_id=agent_id, at=at(2402)))
        return True

    def kill(self, agent_id: str) -> bool:
        self.calls.append(("kill", agent_id))
        if self.agent_status(agent_id).is_final:
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

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self.stopped.set()


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
        self.checkpoints: dict[str, list[CheckpointEntry]] = {
            RUN_ID: [
                CheckpointEntry(
                    f"cp-{seq:04d}-{agent}-t{turn}",
                    seq,
                    agent,
                    1,
                    turn,
                    at(300 * seq),
                    status,
                    cost,
                    tokens,
                    agent_status="running",
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

    def list_checkpoints(self, run_dir: Path) -> list[CheckpointEntry]:
        return list(self.checkpoints.get(run_dir.name, []))

    def last_exchange(self, run_dir: Path, checkpoint_id: str) -> Exchange | None:
        self.exchange_requests.append(checkpoint_id)
        return Exchange(
            prompt="Go deeper: search for the strongest evidence on the points that are still uncertain.",
            reply="Sodium-ion cell prices fell 18% year on year [1]. Grid tenders in China now specify "
            "sodium-ion for 20% of new capacity, and two Nordic utilities have signed offtake agreements.",
        )
