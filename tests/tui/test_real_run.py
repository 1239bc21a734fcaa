"""The app driving the real orchestrator on the simulator: what the user sees is what the run does.

Every assertion about control (pause, resume, kill) is made on the orchestrator itself, and the
budget meter is checked against ``summary.json``, the file scripts and CI trust.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Static, Tree

from core import events as ev
from core.config.loader import load_config
from core.control import AgentStatus, RunStatus
from core.engine.orchestrator import Orchestrator
from core.events import EventBus
from core.persistence.checkpoints import CheckpointStore
from core.runner import resume_run, start_run
from core.simulator import Simulator, SimulatorSettings
from core.starting import Start, StartingRun, new_run
from tests.core import programs
from tests.waits import until
from tui.app import ResearchApp
from tui.format import money
from tui.screens.checkpoints import CheckpointBrowserScreen
from tui.screens.choice import ChoiceScreen
from tui.screens.main import MainScreen
from tui.widgets.budget_meter import BudgetMeter

pytestmark = pytest.mark.timeout(60)

LAYER_1 = ("alpha", "beta", "gamma")
SIZE = (160, 48)
STREAM_EVENTS = (ev.TextStreamed, ev.TurnCompleted)
E = TypeVar("E", bound=ev.Event)
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def small_program(tmp_path: Path, *, max_turns: int = 2, tokens_per_second: int = 200) -> Path:
    """3 agents, then 1 reading them: at 200 tokens/s a turn lasts about a second, a report ~3 s."""
    data = programs.program(
        [programs.agent(a) for a in LAYER_1],
        [programs.agent("delta", reads=list(LAYER_1), max_turns=1)],
        max_turns=max_turns,
        simulator={
            "latency_ms": 200,
            "tokens_per_second": tokens_per_second,
            "output_tokens_per_turn": [100, 200],
        },
    )
    return programs.write(tmp_path, data)


class Recorder:
    """Every event of the run, in publication order (a bus listener attached before it starts)."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events: list[ev.Event] = []
        self.bus.listen(self.events.append)

    def of(self, kind: type[E], agent_id: str | None = None, *, since: int = 0) -> list[E]:
        return [
            e
            for e in self.events[since:]
            if isinstance(e, kind) and (agent_id is None or e.agent_id == agent_id)
        ]

    def index_of_first(self, kind: type[ev.Event], agent_id: str) -> int | None:
        return next(
            (i for i, e in enumerate(self.events) if isinstance(e, kind) and e.agent_id == agent_id), None
        )


def make_app(config: Path, runs: Path, recorder: Recorder) -> ResearchApp:
    async def factory() -> Orchestrator:
        return await start_run(config, runs, simulate=True, bus=recorder.bus)

    return ResearchApp(control_factory=factory, runs_dir=runs)


def orchestrator(app: ResearchApp) -> Orchestrator:
    assert isinstance(app.control, Orchestrator)
    return app.control


def main_screen(app: ResearchApp) -> MainScreen:
    screen = app.screen
    assert isinstance(screen, MainScreen), f"expected the main screen, got {type(screen).__name__}"
    return screen


def pane_text(app: ResearchApp, agent_id: str) -> str:
    feed = main_screen(app).feed(agent_id)
    return feed.text if feed is not None else ""


async def started(pilot: Pilot[Any], app: ResearchApp) -> MainScreen:
    """Wait until the layer-1 agents all stream into their panes."""
    await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen")
    await until(
        pilot,
        lambda: all(len(pane_text(app, a)) > 40 for a in LAYER_1),
        "text in every layer-1 pane",
    )
    return main_screen(app)


async def stop_and_wait(pilot: Pilot[Any], app: ResearchApp) -> None:
    await app.stop_run()
    await pilot.pause()


def run_status(app: ResearchApp) -> RunStatus | None:
    return app.outcome.status if app.outcome is not None else None


def summary_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return data


# --- panes ----------------------------------------------------------------------------------------


async def test_each_running_agent_gets_a_pane_that_fills_with_its_stream(tmp_path: Path) -> None:
    recorder = Recorder()
    app = make_app(small_program(tmp_path, tokens_per_second=400), tmp_path / "runs", recorder)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        assert set(screen.feeds) == set(LAYER_1)  # delta (layer 2) is pending: no pane yet
        assert {pane.agent_id for pane in screen.shown_panes()} == set(LAYER_1)
        for agent in LAYER_1:
            streamed = "".join(e.text for e in recorder.of(ev.TextStreamed, agent))
            assert streamed[:30] in pane_text(app, agent)  # the agent's own words, not another agent's
            pane = screen.pane(agent)
            assert pane is not None
            painted = "\n".join(str(line) for line in pane.view.lines)
            assert painted.strip(), f"{agent}'s pane holds text but painted none"
        await until(
            pilot,
            lambda: any('🔍 "' in pane_text(app, a) for a in LAYER_1),
            "a search shown in a pane",
        )
        # layer 2: the finished agents give their place to delta, whose pane fills in turn
        await until(pilot, lambda: len(pane_text(app, "delta")) > 40, "text in delta's pane", 15)
        assert set(main_screen(app).feeds) == {"delta"}
        assert [pane.agent_id for pane in main_screen(app).shown_panes()] == ["delta"]
        await stop_and_wait(pilot, app)


# --- pause and resume ---------------------------------------------------------------------------


async def test_p_pauses_the_selected_agent_in_the_orchestrator_and_p_again_resumes_it(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    app = make_app(small_program(tmp_path, max_turns=8), tmp_path / "runs", recorder)
    async with app.run_test(size=SIZE) as pilot:
        screen = await started(pilot, app)
        run = orchestrator(app)
        assert screen.selected_agent == "alpha"
        await pilot.press("p")
        assert run.agent_status("alpha") in (AgentStatus.PAUSING, AgentStatus.PAUSED)
        await until(pilot, lambda: recorder.of(ev.AgentPaused, "alpha"), "alpha to reach paused", 8)
        paused_at = recorder.index_of_first(ev.AgentPaused, "alpha")
        assert paused_at is not None
        assert run.agent_status("alpha") is AgentStatus.PAUSED
        alpha_stream = [
            e for e in recorder.events[:paused_at] if e.agent_id == "alpha" and isinstance(e, STREAM_EVENTS)
        ]
        assert isinstance(alpha_stream[-1], ev.TurnCompleted)  # the call in flight finished its turn
        await until(
            pilot,
            lambda: getattr(main_screen(app).pane("alpha"), "border_subtitle", None) == "paused",
            "the pane saying paused",
        )
        await until(pilot, lambda: "‖ paused" in pane_text(app, "alpha"), "the paused note in the pane")
        # the others keep working: each completes a whole turn begun after alpha paused
        await until(
            pilot,
            lambda: all(
                len(recorder.of(ev.TurnCompleted, a, since=paused_at)) >= 2 for a in ("beta", "gamma")
            ),
            "whole turns of beta and gamma while alpha is paused",
        )
        assert recorder.of(ev.TurnCompleted, "alpha", since=paused_at) == []
        assert recorder.of(ev.TextStreamed, "alpha", since=paused_at) == []  # no new call started

        await pilot.press("p")
        assert run.agent_status("alpha") is AgentStatus.RUNNING
        await until(
            pilot,
            lambda: recorder.of(ev.TurnCompleted, "alpha", since=paused_at),
            "alpha's next turn after resuming",
        )
        assert main_screen(app).table.rows_by_id["alpha"].status is AgentStatus.RUNNING
        await stop_and_wait(pilot, app)


# --- kill -----------------------------------------------------------------------------------------


async def test_k_asks_first_n_keeps_the_agent_and_y_kills_it_in_the_orchestrator(tmp_path: Path) -> None:
    recorder = Recorder()
    app = make_app(small_program(tmp_path, max_turns=8), tmp_path / "runs", recorder)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        run = orchestrator(app)
        await pilot.press("down")
        assert main_screen(app).selected_agent == "beta"

        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the kill confirmation")
        assert run.agent_status("beta") is AgentStatus.RUNNING  # nothing happens before the answer
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the main screen again")
        await pilot.pause()  # the dialog's answer has been acted on
        assert run.agent_status("beta") is AgentStatus.RUNNING
        assert recorder.of(ev.AgentKilled) == []

        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the kill confirmation")
        await pilot.press("x")  # now (y: after its call)
        await until(pilot, lambda: run.agent_status("beta") is AgentStatus.KILLED, "beta killed", 5)
        assert [e.agent_id for e in recorder.of(ev.AgentKilled)] == ["beta"]
        await until(pilot, lambda: "☠ killed" in pane_text(app, "beta"), "the pane saying killed")
        assert run.agent_status("alpha") is not AgentStatus.KILLED  # only the selected agent
        assert (Path(run.run_dir) / "reports" / "beta.md").is_file()  # its partial report is kept
        await stop_and_wait(pilot, app)


# --- the budget meter at the end -------------------------------------------------------------------


async def test_at_the_end_of_the_run_the_budget_meter_equals_summary_json(tmp_path: Path) -> None:
    recorder = Recorder()
    app = make_app(small_program(tmp_path, max_turns=2, tokens_per_second=400), tmp_path / "runs", recorder)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await until(pilot, lambda: app.outcome is not None, "the end of the run", 20)
        assert app.outcome is not None and app.outcome.status is RunStatus.COMPLETED
        meter = main_screen(app).query_one(BudgetMeter)
        summary = summary_of(app.outcome.run_dir)
        dollars = f"{money(summary['cost_usd'])} spent"
        assert dollars == f"${summary['cost_usd']:,.2f} spent"
        rendered = meter.query_one("#meter-lines", Static)
        await until(pilot, lambda: dollars in str(rendered.render()), f"the meter showing {dollars}")
        budget = meter.budget
        assert budget is not None
        assert budget.spent_usd > 0 and budget.searches > 0
        assert budget.spent_usd == pytest.approx(summary["cost_usd"], abs=1e-6)
        assert budget.searches == summary["searches"]
        assert budget.tokens == sum(summary[k] for k in TOKEN_FIELDS)
        assert budget.reserved_usd == 0 and budget.reserved_searches == 0  # nothing in flight at the end
        assert f"searches {summary['searches']}" in str(rendered.render())


# --- checkpoints and resume from here -------------------------------------------------------------


async def test_checkpoint_browser_lists_the_runs_checkpoints_and_a_fork_from_an_earlier_one_completes(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    runs = tmp_path / "runs"
    app = make_app(small_program(tmp_path, max_turns=3, tokens_per_second=400), runs, recorder)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        source = orchestrator(app)
        source_dir = Path(source.run_dir)
        await until(
            pilot, lambda: len(recorder.of(ev.CheckpointSaved, "alpha")) >= 2, "two checkpoints of alpha", 15
        )
        await stop_and_wait(pilot, app)
        assert run_status(app) is RunStatus.INTERRUPTED
        infos = CheckpointStore(source_dir).list()

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CheckpointBrowserScreen), "the checkpoint browser")
        browser = app.screen
        assert isinstance(browser, CheckpointBrowserScreen)
        await pilot.pause()
        # opened on the selected agent (alpha): exactly its checkpoints, oldest first, latest picked
        assert [e.id for e in browser.shown] == [i.id for i in infos if i.agent_id == "alpha"]
        table = browser.query_one("#checkpoint-table", DataTable)
        assert [str(k.value) for k in table.rows] == [e.id for e in browser.shown]
        assert [e.turn for e in browser.shown] == [i.turn for i in infos if i.agent_id == "alpha"]
        # the run's own node (the agent's parent in the tree) lists every checkpoint of the run
        browser.query_one(Tree).focus()
        await pilot.press("shift+left")
        await until(pilot, lambda: len(browser.shown) == len(infos), "all the run's checkpoints")
        assert [(e.id, e.turn, e.tokens, e.cost_usd) for e in browser.shown] == [
            (i.id, i.turn, i.tokens, i.cost_usd) for i in infos
        ]
        assert {e.agent_id for e in browser.shown} == set(LAYER_1)
        assert all(e.status == "ok" for e in browser.shown)

        # pick alpha's first checkpoint, an earlier one than the run's latest: a fork
        target = next(i for i in infos if i.agent_id == "alpha" and i.turn == 1)
        table.focus()
        for _ in range(len(infos)):
            current = browser.selected()
            if current is not None and current.id == target.id:
                break
            await pilot.press("up")
        picked = browser.selected()
        assert picked is not None and picked.id == target.id and not browser.is_latest(picked)
        assert str(browser.query_one("#resume", Button).label) == "Fork from here"
        await pilot.press("R")
        await until(
            pilot,
            lambda: app.control not in (None, source) and isinstance(app.screen, MainScreen),
            "the forked run open in the app",
        )
        forked = orchestrator(app)
        assert Path(forked.run_dir) != source_dir
        assert main_screen(app).control is forked
        await until(pilot, lambda: app.outcome is not None, "the forked run to finish", 20)
        assert run_status(app) is RunStatus.COMPLETED
        summary = summary_of(Path(forked.run_dir))
        assert summary["status"] == "completed"
        assert summary["parent"]["run_id"] == source.run_id
        assert picked.id in json.dumps(summary["parent"])
        assert summary_of(source_dir)["status"] == "interrupted"  # the source run is left as it was


async def test_a_run_shown_while_it_is_assembled_runs_to_its_end_on_the_bus_the_app_drew_it_from(
    tmp_path: Path,
) -> None:
    """As ``run`` hands it over: the config's agents first, the runner imported in a worker thread."""
    config_path, runs = small_program(tmp_path, max_turns=1, tokens_per_second=400), tmp_path / "runs"

    def load() -> Start:
        return lambda bus: start_run(config_path, runs, simulate=True, bus=bus)

    starting = new_run(load, load_config(config_path), runs_dir=runs, simulated=True)

    async def factory() -> StartingRun:
        return starting

    app = ResearchApp(control_factory=factory, runs_dir=runs)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.outcome is not None, "the end of the run", 30)
        assert app.outcome is not None and app.outcome.status is RunStatus.COMPLETED
        assert starting.run_id == app.outcome.run_dir.name and starting.run_dir == app.outcome.run_dir
        screen = main_screen(app)
        assert set(screen.table.rows_by_id) == {*LAYER_1, "delta"}
        assert all(row.status is AgentStatus.COMPLETED for row in screen.table.rows_by_id.values())
        assert summary_of(app.outcome.run_dir)["status"] == "completed"
    assert app.exit_code == 0


# --- a clean quit ----------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_ctrl_q_then_y_on_the_shipped_program_stops_cleanly_and_the_resume_rebuys_nothing(
    tmp_path: Path,
) -> None:
    """The shipped program, quit mid-layer-1 with ctrl+q then y: the calls in flight finish their turn
    and are saved (exit 130, well within the grace), nothing unconfirmed is charged, and the resume
    sends the simulator no request it had already answered."""
    shipped = yaml.safe_load(programs.DEFAULT_CONFIG.read_text(encoding="utf-8"))["simulator"]
    settings = SimulatorSettings(
        seed=shipped["seed"], latency_ms=shipped["latency_ms"], tokens_per_second=400,
        pause_turn_probability=shipped["pause_turn_probability"],
    )  # fmt: skip
    recorder = Recorder()
    runs = tmp_path / "runs"
    async with Simulator(settings, record_bodies=True) as sim:

        async def factory() -> Orchestrator:
            return await start_run(
                programs.DEFAULT_CONFIG, runs, simulate=True, base_url=sim.base_url, bus=recorder.bus
            )

        app = ResearchApp(control_factory=factory, runs_dir=runs)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: len(recorder.of(ev.TurnCompleted)) >= 3, "three turns of layer 1", 60)
            await pilot.press("ctrl+q")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the quit dialog")
            dialog = app.screen
            assert isinstance(dialog, ChoiceScreen)
            assert "Stop now" in str(dialog.message) and "up to $" in str(dialog.message)  # the amount
            asked = time.monotonic()
            await pilot.press("y")
            await until(pilot, lambda: not app.is_running, "the app to exit", 90)
        took = time.monotonic() - asked
        first = [json.dumps(b, sort_keys=True) for b in sim.stats.bodies if "max_tokens" in b]

        run_dir = runs / app.control.run_id if app.control is not None else None
        assert run_dir is not None
        resumed = await resume_run(runs, run_dir.name, base_url=sim.base_url)
        turns = 0

        def after_five_turns(event: ev.Event) -> None:
            nonlocal turns
            turns += isinstance(event, ev.TurnCompleted)
            if turns == 5:
                resumed.stop(now=True)

        resumed.bus.listen(after_five_turns)
        await resumed.run()
        later = [json.dumps(b, sort_keys=True) for b in sim.stats.bodies if "max_tokens" in b][len(first) :]

    assert app.return_code == 130 and took < 60
    assert not recorder.of(ev.AgentStarted, "cross-tech"), "stopped in layer 1"
    stopping = recorder.of(ev.RunStopping)
    assert stopping and not any(e.now for e in stopping)
    assert [e for e in recorder.of(ev.AttemptCharged) if e.basis != "reported"] == [], "nothing unconfirmed"
    assert later and not set(later) & set(first), "the resume asked again for an answer that had arrived"
