"""The app tells the truth about a run's state: resumed, forked and finished runs on the real engine.

What the app shows comes from the same fold of events (``core.view.RunView``) as ``summary.json``,
seeded from the run's saved state, so a resumed run shows its finished agents finished, with
their figures, and a fork's figures equal its own summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from core import events as ev
from core.control import AgentStatus, RunStatus
from core.engine.orchestrator import Orchestrator
from core.persistence.checkpoints import CheckpointStore
from core.runner import resume_run, start_run
from tests.tui.test_real_run import LAYER_1, SIZE, main_screen, small_program, summary_of, until
from tui.app import ResearchApp

pytestmark = pytest.mark.timeout(90)


def app_for(factory: Any, runs: Path) -> ResearchApp:
    return ResearchApp(control_factory=factory, runs_dir=runs)


def figures(row: Any) -> tuple[str, int, int, float]:
    return (row.status.value, row.turn, row.searches, round(row.cost_usd, 6))


def summary_figures(agent: dict[str, Any]) -> tuple[str, int, int, float]:
    return (agent["status"], agent["turns"], agent["searches"], round(agent["cost_usd"], 6))


async def interrupted_in_layer_2(config: Path, runs: Path) -> Orchestrator:
    """Run headless until the layer-2 agent has started, then stop: layer 1 is complete."""
    run = await start_run(config, runs, simulate=True)

    def stop_in_layer_2(event: ev.Event) -> None:
        if isinstance(event, ev.TurnCompleted) and event.agent_id == "delta":
            run.stop()

    run.bus.listen(stop_in_layer_2)
    outcome = await run.run()
    assert outcome.status is RunStatus.INTERRUPTED
    return run


async def test_a_run_resumed_in_the_app_shows_its_finished_agents_with_their_figures(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    config = small_program(tmp_path, max_turns=2, tokens_per_second=800)
    first = await interrupted_in_layer_2(config, runs)
    before = {a["id"]: a for a in summary_of(Path(first.run_dir))["agents"]}
    assert all(before[a]["status"] == "completed" for a in LAYER_1)

    app = app_for(lambda: resume_run(runs, first.run_id, simulate=True), runs)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.control is not None and app.screen.id != "_default", "the run")
        screen = main_screen(app)
        await until(pilot, lambda: set(LAYER_1) <= set(screen.table.rows_by_id), "the agent rows")
        for agent in LAYER_1:
            row = screen.table.rows_by_id[agent]
            assert row.status is AgentStatus.COMPLETED
            assert figures(row) == summary_figures(before[agent]), agent
        for agent in LAYER_1:
            cells = screen.table.row_text(agent)
            assert "✓" in cells and f"${before[agent]['cost_usd']:.2f}" in cells, cells
        await until(pilot, lambda: app.outcome is not None, "the resumed run to finish", 40)
        assert app.outcome is not None and app.outcome.status is RunStatus.COMPLETED
        after = {a["id"]: a for a in summary_of(app.outcome.run_dir)["agents"]}
        for agent in (*LAYER_1, "delta"):
            assert figures(screen.table.rows_by_id[agent]) == summary_figures(after[agent]), agent
        for agent in LAYER_1:  # finished before the resume: untouched by it
            assert summary_figures(after[agent]) == summary_figures(before[agent])
        assert summary_of(app.outcome.run_dir)["started_at"] == summary_of(Path(first.run_dir))["started_at"]


async def test_a_fork_shows_figures_equal_to_its_own_summary_and_the_end_shows_the_outcome(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    config = small_program(tmp_path, max_turns=3, tokens_per_second=800)
    first = await interrupted_in_layer_2(config, runs)
    infos = CheckpointStore(Path(first.run_dir)).list()
    earlier = next(i for i in infos if i.agent_id == "beta" and i.turn == 2)

    app = app_for(lambda: resume_run(runs, first.run_id, checkpoint_id=earlier.id, simulate=True), runs)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.control is not None, "the fork")
        fork_dir = Path(app.control.run_dir)  # type: ignore[union-attr]
        assert fork_dir != Path(first.run_dir)
        screen = main_screen(app)
        await until(pilot, lambda: set(LAYER_1) <= set(screen.table.rows_by_id), "the agent rows")

        def agree() -> bool:
            """The table and summary.json (written at least every half second) show the same figures."""
            if not (fork_dir / "summary.json").exists():
                return False  # the run's first summary comes after its run_started lists the rows
            saved = {a["id"]: summary_figures(a) for a in summary_of(fork_dir)["agents"]}
            return all(figures(screen.table.rows_by_id[a]) == saved[a] for a in LAYER_1)

        await until(pilot, agree, "the table and summary.json to agree", 10)
        assert screen.table.rows_by_id["beta"].cost_usd > 0  # the parent's figures carried over

        await until(pilot, lambda: app.outcome is not None, "the fork to finish", 40)
        assert app.outcome is not None and app.outcome.status is RunStatus.COMPLETED
        end = summary_of(fork_dir)
        for agent in end["agents"]:
            assert figures(screen.table.rows_by_id[agent["id"]]) == summary_figures(agent)
        rounding = 0.5e-6 * (len(end["agents"]) + 1)  # each figure is rounded to 6 places in summary.json
        assert sum(a["cost_usd"] for a in end["agents"]) == pytest.approx(end["cost_usd"], abs=rounding)
        assert end["parent"] == {"run_id": first.run_id, "checkpoint_id": earlier.id}

        placeholder = screen.query_one("#no-panes", Static)
        await until(pilot, lambda: "Run completed" in str(placeholder.render()), "the outcome on screen")
        shown = str(placeholder.render())
        assert str(fork_dir / "report.md") in shown.replace("\n", "") and "r opens it" in shown
        assert "Waiting for agents" not in shown
        assert "cap in" not in str(screen.meter.query_one("#projection", Static).render())
