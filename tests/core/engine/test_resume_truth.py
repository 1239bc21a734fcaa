"""Resume tells the truth about what it could not use, and never silently buys everything again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.cli import main
from core.control import RunStatus
from core.events import CheckpointSaved, Event
from core.persistence.checkpoints import CheckpointStore
from core.runner import start_run
from tests.core import programs


def interrupted_simulated_run(tmp_path: Path, saves: int = 2) -> Path:
    """A simulated run stopped once ``saves`` checkpoints were saved (and journaled)."""
    config = programs.write(
        tmp_path, programs.program([programs.agent("a"), programs.agent("b")], max_turns=3)
    )

    async def go() -> Path:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
        seen = 0

        def stop(event: Event) -> None:
            nonlocal seen
            if isinstance(event, CheckpointSaved):
                seen += 1
                if seen == saves:
                    orchestrator.stop()

        orchestrator.bus.listen(stop)
        outcome = await orchestrator.run()
        assert outcome.status is RunStatus.INTERRUPTED
        return outcome.run_dir

    return asyncio.run(go())


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def resume(run: Path, *flags: str) -> int:
    return main(["resume", run.name, "--headless", "--runs-dir", str(run.parent), *flags])


def test_every_corrupt_checkpoint_skipped_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = interrupted_simulated_run(tmp_path)
    newest = CheckpointStore(run).list()[-1]
    corrupt(newest.path)
    capsys.readouterr()
    assert resume(run) == 0
    err = capsys.readouterr().err
    assert f"skipped corrupt checkpoint {newest.id}" in err and newest.agent_id in err


@pytest.mark.parametrize("damage", ["all corrupt", "all deleted"])
def test_no_usable_checkpoint_is_refused_with_the_cost_of_starting_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    run = interrupted_simulated_run(tmp_path)
    for info in CheckpointStore(run).list():
        if damage == "all corrupt":
            corrupt(info.path)
        else:
            info.path.unlink()
    before = (run / "summary.json").read_bytes()
    capsys.readouterr()
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert "--start-over" in err and "about $" in err and "already spent" in err
    assert ("is usable" in err) if damage == "all corrupt" else ("gone" in err)
    assert (run / "summary.json").read_bytes() == before, "nothing ran"
    assert resume(run, "--start-over") == 0
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_a_run_stopped_before_any_checkpoint_restarts_without_asking(tmp_path: Path) -> None:
    run = interrupted_simulated_run(tmp_path)
    for info in CheckpointStore(run).list():
        info.path.unlink()
    (run / "events.jsonl").write_text("")  # no checkpoint was ever saved
    assert resume(run) == 0
