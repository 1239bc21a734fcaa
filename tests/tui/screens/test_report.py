"""The report viewer shows, for a finished run, the same provenance check as ``verify RUN``."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.widgets import Static

from core.runner import start_run
from tests.core import programs
from tui.data import run_documents
from tui.screens.report import ReportViewer


async def finished_run(tmp_path: Path) -> Path:
    data = programs.program([programs.agent("alpha")], [programs.agent("omega")], max_turns=2)
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    return (await orchestrator.run()).run_dir


async def verify_line(run_dir: Path) -> Static:
    viewer = ReportViewer("run", run_documents(run_dir))
    app: App[None] = App()
    async with app.run_test(size=(140, 30)) as pilot:
        await app.push_screen(viewer)
        await viewer.workers.wait_for_complete()
        await pilot.pause()
        line = viewer.query_one("#report-verify", Static)
        return line


async def test_a_finished_run_shows_it_verified(tmp_path: Path) -> None:
    line = await verify_line(await finished_run(tmp_path))
    assert str(line.render()).startswith("✓ verified") and line.has_class("-verified")


async def test_a_tampered_report_shows_the_problem_and_its_place(tmp_path: Path) -> None:
    run_dir = await finished_run(tmp_path)
    with (run_dir / "reports" / "alpha.md").open("a", encoding="utf-8") as handle:
        handle.write("\n[made up](https://invented.example/x)\n")
    line = await verify_line(run_dir)
    text = str(line.render())
    assert line.has_class("-problems") and "reports/alpha.md" in text and "https://invented.example/x" in text
