"""A scripted run for the app's tests: real EventBus, recorded control calls, frozen timestamps.

``FakeRun`` implements ``core.control.RunControl``: its ``run()`` publishes a script of core events
(each stamped with a fixed time), then stays active until ``stop()``, like a run whose agents are
still working. Pause/resume/kill change its statuses and publish the events the orchestrator would.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from core import events as ev
from core.api.usage import TokenUsage
from core.control import AgentStatus, RunOutcome, RunStatus
from core.events import EventBus
from core.view import RunView
from tui.data import CheckpointEntry, Exchange, RunEntry

T0 = datetime(2026, 11, 24, 10, 2, 12).timestamp()  # local time, so clock strings are stable in any TZ
NOW = T0 + 41 * 60 + 12  # the frozen "now" of the header: 00:41:12 elapsed
RUN_ID = "20261124-100212-sodium-ion-2026-3f2a"
AGENTS = (
    ("market", 1, "Market and costs"),
    ("chemistry", 1, "Cell chemistry"),
    ("supply-chain", 1, "Supply chain"),
    ("policy", 1, "Policy and procurement"),
    ("patents", 1, "Patents"),
    ("cross-tech", 2, "Cross-analysis: technology"),
    ("cross-market", 2, "Cross-analysis: market"),
    ("synthesis", 3, "Synthesis"),
)

MARKET_TEXT = (
    "Stationary storage tenders in 2026 show sodium-ion winning on price in cold climates. "
    "Cell prices fell 18% year on year [1], while the cathode share of cell cost dropped below a third. "
    "LFP still leads on energy density, but the gap matters less for grid storage.\n\n"
    "Three markets stand out: China, India and the Nordics. "
)
CHEMISTRY_TEXT = (
    "Hard-carbon anodes now reach 350 mAh/g [2] in commercial cells, and Prussian white cathodes "
    "are in volume production. Cycle life above 6,000 cycles is reported for layered oxides. "
)
SUPPLY_TEXT = "Precursor supply is concentrated in two provinces; hard-carbon feedstock is the bottleneck. "


def at(seconds: float) -> float:
    return T0 + seconds


def words(text: str) -> Iterator[str]:
    """Split like a token stream: small fragments that often end mid-word."""
    piece = ""
    for index, char in enumerate(text):
        piece += char
        if len(piece) >= 7 or char == "\n" or index == len(text) - 1:
            yield piece
            piece = ""


def budget(
    seconds: float, spent: float, reserved: float, searches: int, tokens: int, burn: float
) -> ev.BudgetUpdated:
    return ev.BudgetUpdated(
        run_id=RUN_ID,
        at=at(seconds),
        spent_usd=spent,
        reserved_usd=reserved,
        cap_usd=40.0,
        searches=searches,
        reserved_searches=5,
        search_cap=500,
        tokens=tokens,
        token_cap=5_000_000,
        burn_usd_per_min=burn,
        seconds_to_cap=(40.0 - spent) / burn * 60 if burn else None,
    )


def sodium_script() -> list[ev.Event]:
    """Layer 1 of the sample program mid-flight: three agents streaming, one done, one failed, a retry."""
    e: list[ev.Event] = [
        ev.RunStarted(
            run_id=RUN_ID,
            at=at(0),
            program="sodium-ion-2026",
            run_dir=f"runs/{RUN_ID}",
            agents=AGENTS,
            simulated=True,
        ),
        ev.LayerStarted(
            run_id=RUN_ID, at=at(0), layer=1, agent_ids=tuple(a for a, layer, _ in AGENTS if layer == 1)
        ),
    ]
    for agent, layer, title in AGENTS[:5]:
        e.append(ev.AgentStarted(run_id=RUN_ID, agent_id=agent, layer=1, turn=1, at=at(1), title=title))
        del layer
    burns = [0.05, 0.09, 0.12, 0.18, 0.15, 0.2, 0.18]
    for n, burn in enumerate(burns):
        e.append(budget(60 * (n + 1), 0.9 * (n + 1), 0.9, 6 * (n + 1), 260_000 * (n + 1), burn))
    e += [
        ev.SearchIssued(
            run_id=RUN_ID,
            agent_id="market",
            layer=1,
            turn=4,
            at=at(2300),
            query="sodium-ion grid storage tenders 2026",
            tool_use_id="srv_1",
        ),
        ev.SearchResultsReceived(
            run_id=RUN_ID,
            agent_id="market",
            layer=1,
            turn=4,
            at=at(2301),
            tool_use_id="srv_1",
            count=10,
            domains=("energy-storage.example", "grid-news.example", "tenders.example", "ieso.example"),
        ),
    ]
    e += [
        ev.TextStreamed(run_id=RUN_ID, agent_id="market", layer=1, turn=4, at=at(2302), text=w)
        for w in words(MARKET_TEXT)
    ]
    e += [
        ev.TextStreamed(run_id=RUN_ID, agent_id="chemistry", layer=1, turn=3, at=at(2302), text=w)
        for w in words(CHEMISTRY_TEXT)
    ]
    e += [
        ev.SearchIssued(
            run_id=RUN_ID,
            agent_id="chemistry",
            layer=1,
            turn=3,
            at=at(2303),
            query="layered oxide cathode cycle life 2026",
            tool_use_id="srv_2",
        ),
        ev.SearchResultsReceived(
            run_id=RUN_ID,
            agent_id="chemistry",
            layer=1,
            turn=3,
            at=at(2304),
            tool_use_id="srv_2",
            count=8,
            domains=("batteries.example",),
        ),
    ]
    e += [
        ev.TextStreamed(run_id=RUN_ID, agent_id="supply-chain", layer=1, turn=5, at=at(2302), text=w)
        for w in words(SUPPLY_TEXT)
    ]
    for agent, turn, cost, searches in (
        ("market", 4, 1.84, 12),
        ("chemistry", 3, 1.21, 9),
        ("supply-chain", 5, 2.02, 14),
        ("policy", 6, 1.77, 11),
        ("patents", 2, 0.40, 4),
    ):
        e.append(
            ev.TurnCompleted(
                run_id=RUN_ID,
                agent_id=agent,
                layer=1,
                turn=turn,
                at=at(2305),
                stop_reason="end_turn",
                cost_usd=cost,
                model="claude-sonnet-5",
                usage=TokenUsage(input_tokens=9000, output_tokens=1500, web_search_requests=searches),
            )
        )
    e += [
        ev.AgentFinished(
            run_id=RUN_ID,
            agent_id="policy",
            layer=1,
            turn=6,
            at=at(2306),
            status="completed",
            report_path=f"runs/{RUN_ID}/reports/policy.md",
            turns=6,
            searches=11,
            cost_usd=1.77,
        ),
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="patents",
            layer=1,
            turn=2,
            at=at(1742),
            request_id="req_01HX9ZPATENTS",
            error_kind="rate_limit",
            status_code=429,
            attempt=2,
            wait_s=12.0,
        ),
        ev.AttemptAbandoned(run_id=RUN_ID, agent_id="patents", layer=1, turn=2, at=at(1742), chars=312),
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="patents",
            layer=1,
            turn=2,
            at=at(1900),
            request_id="req_01HX9ZOVERLD",
            error_kind="overloaded",
            status_code=529,
            attempt=3,
            wait_s=20.0,
        ),
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="chemistry",
            layer=1,
            turn=3,
            at=at(2000),
            error_kind="connection",
            status_code=None,
            attempt=1,
            wait_s=1.5,
        ),
        ev.AgentFailed(
            run_id=RUN_ID,
            agent_id="patents",
            layer=1,
            turn=2,
            at=at(2100),
            error="500 api_error",
            status_code=500,
            error_type="api_error",
            request_id="req_01HX9Z500",
        ),
    ]
    return e


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
