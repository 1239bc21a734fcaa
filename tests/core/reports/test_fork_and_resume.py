"""Reports and ``verify`` across a fork and an in-place resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main
from core.control import RunStatus
from core.events import CheckpointSaved, Event
from core.persistence.checkpoints import CheckpointStore
from core.reports.parse import parse_report
from core.runner import resume_run, start_run
from tests.core import programs


def chain_program() -> dict:
    return programs.program(
        [programs.agent("alpha")],
        [programs.agent("omega", reads=["alpha"])],
        [programs.agent("zeta", reads=["omega"])],
        max_turns=2,
    )


async def test_a_fork_rebuilds_a_later_layers_report_with_its_cited_through_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = programs.write(tmp_path, chain_program())
    source = (await (await start_run(config, tmp_path / "runs", simulate=True)).run()).run_dir
    original = parse_report((source / "reports" / "omega.md").read_text())
    omega_last = [i for i in CheckpointStore(source).list() if i.agent_id == "omega"][-1]

    fork = await resume_run(tmp_path / "runs", source.name, checkpoint_id=omega_last.id, simulate=True)
    outcome = await fork.run()
    assert outcome.status is RunStatus.COMPLETED and outcome.run_dir != source

    rebuilt = parse_report((outcome.run_dir / "reports" / "omega.md").read_text())
    assert [s.url for s in rebuilt.sources] == [s.url for s in original.sources]
    assert "[alpha:" not in rebuilt.body
    assert main(["verify", str(outcome.run_dir)]) == 0, capsys.readouterr().out
    assert main(["verify", str(source)]) == 0, capsys.readouterr().out


async def test_a_run_stopped_midway_and_resumed_in_place_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = programs.write(tmp_path, chain_program())
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    saved: list[Event] = []

    def stop_after_three(event: Event) -> None:
        if isinstance(event, CheckpointSaved):
            saved.append(event)
            if len(saved) == 3:
                orchestrator.stop()

    orchestrator.bus.listen(stop_after_three)
    first = await orchestrator.run()
    assert first.status is RunStatus.INTERRUPTED
    resumed = await (await resume_run(tmp_path / "runs", first.run_dir.name, simulate=True)).run()
    assert resumed.status is RunStatus.COMPLETED and resumed.run_dir == first.run_dir
    assert main(["verify", str(resumed.run_dir)]) == 0, capsys.readouterr().out
