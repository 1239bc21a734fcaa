"""A full disk or an unwritable runs directory stops the run clearly; saved work stays intact."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import core.persistence.atomic
from core.cli import main
from core.control import RunStatus
from core.engine.runner import start_run
from core.events import CheckpointSaved, Event
from core.persistence.checkpoints import CheckpointStore
from tests.core import programs


async def test_a_full_disk_mid_run_stops_it_with_a_clear_message_and_keeps_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = programs.program(
        [programs.agent("a"), programs.agent("b")], max_turns=4, simulator={"latency_ms": 30}
    )
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    real_write = os.write
    saved: list[str] = []

    def full_disk(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def watch(event: Event) -> None:
        if isinstance(event, CheckpointSaved):
            saved.append(event.checkpoint_id)
            if len(saved) == 3:
                monkeypatch.setattr(core.persistence.atomic.os, "write", full_disk)

    orchestrator.bus.listen(watch)
    outcome = await orchestrator.run()
    monkeypatch.setattr(core.persistence.atomic.os, "write", real_write)

    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
    assert outcome.message and "disk is full" in outcome.message and "resume" in outcome.message
    infos = CheckpointStore(outcome.run_dir).list()
    # A save that was landing when the run stopped is on disk though never announced: kept, intact.
    assert set(saved) <= {i.id for i in infos}, "every checkpoint announced is on disk"
    assert all(i.status == "ok" for i in infos), "the last good checkpoints are intact"
    assert not list((outcome.run_dir / "checkpoints").glob("*.tmp*")), "no temporary files left"


def test_an_unwritable_runs_directory_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    runs = tmp_path / "runs"

    def read_only(path: Path, mode: int = 0o777, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(Path, "mkdir", read_only)
    code = main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2
    assert "read-only" in err and "Traceback" not in err
    assert list(tmp_path.rglob("summary.json")) == []
