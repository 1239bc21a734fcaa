"""A full disk or an unwritable runs directory stops the run clearly; saved work stays intact."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import core.persistence.atomic
from core.cli import main
from core.control import RunStatus
from core.events import CheckpointSaved, DiskErrorRaised, Event, TurnCompleted
from core.persistence import journal as journal_module
from core.persistence.atomic import as_disk_error
from core.persistence.checkpoints import CheckpointStore
from core.runner import start_run
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


async def test_a_failed_journal_write_stops_the_run_as_a_failed_checkpoint_write_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """events.jsonl is durable state (verify, resume and attach read it): losing it is not logged and
    ignored; the run stops as failed, its checkpoints intact, and says why."""
    data = programs.program([programs.agent("a"), programs.agent("b")], max_turns=4)
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    real_append = journal_module._append

    def fails_after_the_first_turn(fd: int, data: bytes, path: Path) -> int:
        if any(isinstance(event, TurnCompleted) for event in events):
            raise as_disk_error(OSError(errno.EIO, "Input/output error"), path)
        return real_append(fd, data, path)

    monkeypatch.setattr(journal_module, "_append", fails_after_the_first_turn)
    outcome = await orchestrator.run()

    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
    assert outcome.message is not None and "events.jsonl" in outcome.message
    (said,) = [e for e in events if isinstance(e, DiskErrorRaised)]
    assert said.path == str(outcome.run_dir / "events.jsonl") and said.message == outcome.message
    turns = [e for e in events if isinstance(e, TurnCompleted)]
    assert 1 <= len(turns) < 8, "the run stopped early, not after every turn"
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["status"] == "failed"
    infos = CheckpointStore(outcome.run_dir).list()
    assert infos and all(i.status == "ok" for i in infos), "the checkpoints saved are intact"
