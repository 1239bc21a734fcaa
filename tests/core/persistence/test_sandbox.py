"""A run directory is a sandbox: nothing the product writes follows a link out of it.

A run directory may come from someone else. Each entry the run writes is replaced by a link to a
file or directory of the user's; ``resume`` must refuse (naming the path), ``runs`` and
``checkpoints`` must still work, and every link target must be left exactly as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from core.cli import main
from core.persistence.atomic import UnsafePathError, write_atomic
from core.persistence.journal import Journal
from core.persistence.journal_read import read_journal
from core.persistence.rundir import RunDir
from core.persistence.runlock import RunLock
from core.runner import start_run
from tests.core import programs


def finished_run(tmp_path: Path) -> Path:
    data = programs.program([programs.agent("a"), programs.agent("b")], max_turns=1)
    config = programs.write(tmp_path, data)

    async def go() -> Path:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
        return (await orchestrator.run()).run_dir

    return asyncio.run(go())


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Content hash and mtime of everything under ``root`` (a file or a directory)."""
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in paths}


def link_file(run: Path, name: str, victim: Path) -> Path:
    victim.write_text("precious\n")
    target = run / name
    if target.is_dir():
        for child in target.iterdir():
            child.unlink()
        target.rmdir()
    elif target.exists():
        target.unlink()
    target.symlink_to(victim)
    return target


def link_checkpoint(run: Path, victim: Path) -> Path:
    victim.write_text("precious\n")
    first = sorted((run / "checkpoints").iterdir())[0]
    first.unlink()
    first.symlink_to(victim)
    return first


def link_reports(run: Path, victim: Path) -> Path:
    victim.mkdir()
    (victim / "a.md").write_text("my notes\n")
    reports = run / "reports"
    for child in reports.iterdir():
        child.unlink()
    reports.rmdir()
    reports.symlink_to(victim, target_is_directory=True)
    return reports


def link_directory(place: Path, victim: Path) -> Path:
    victim.mkdir()
    (victim / "notes.json").write_text("{}\n")
    if place.exists():
        for child in place.iterdir():
            child.unlink()
        place.rmdir()
    place.symlink_to(victim, target_is_directory=True)
    return place


TAMPERINGS: dict[str, Callable[[Path, Path], Path]] = {
    "run.lock": lambda run, victim: link_file(run, "run.lock", victim),
    "events.jsonl": lambda run, victim: link_file(run, "events.jsonl", victim),
    "summary.json": lambda run, victim: link_file(run, "summary.json", victim),
    "report.md": lambda run, victim: link_file(run, "report.md", victim),
    "checkpoints/<file>": link_checkpoint,
    "reports/": link_reports,
    "inflight/": lambda run, victim: link_directory(run / "inflight", victim),
}


@pytest.mark.parametrize("entry", sorted(TAMPERINGS))
def test_links_in_a_run_directory_are_refused_and_their_targets_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    run = finished_run(tmp_path)
    runs = run.parent
    victim = tmp_path / "home" / "victim"
    victim.parent.mkdir()
    link = TAMPERINGS[entry](run, victim)
    before = snapshot(victim)
    capsys.readouterr()

    assert main(["resume", run.name, "--headless", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert str(link) in err and "symbolic link" in err and "Traceback" not in err
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    assert main(["checkpoints", run.name, "--runs-dir", str(runs)]) == 0
    assert snapshot(victim) == before
    assert link.is_symlink(), "the link itself is left for the user to inspect"


def test_a_symlinked_checkpoint_is_listed_as_corrupt_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = finished_run(tmp_path)
    link = link_checkpoint(run, tmp_path / "victim")
    capsys.readouterr()
    assert main(["checkpoints", run.name, "--runs-dir", str(run.parent)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(link.stem))
    assert "corrupt (not a regular file" in line


def test_a_linked_run_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = finished_run(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    run.rename(elsewhere)
    run.symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    assert main(["resume", run.name, "--headless", "--runs-dir", str(run.parent)]) == 2
    assert "run directory" in capsys.readouterr().err
    assert snapshot(elsewhere) == before


def test_events_jsonl_replaced_by_a_directory_is_a_clear_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = finished_run(tmp_path)
    (run / "events.jsonl").unlink()
    (run / "events.jsonl").mkdir()
    capsys.readouterr()
    assert main(["resume", run.name, "--headless", "--runs-dir", str(run.parent)]) == 2
    err = capsys.readouterr().err
    assert "events.jsonl is a directory" in err and "Traceback" not in err


def test_atomic_writes_never_follow_a_linked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "reports").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_atomic(tmp_path / "run" / "reports" / "a.md", b"x")
    assert list(outside.iterdir()) == []


def test_an_atomic_write_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "summary.json").symlink_to(victim)
    write_atomic(tmp_path / "summary.json", b"{}")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "summary.json").is_symlink()


def test_the_lock_and_the_journal_refuse_links(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1", "program: {}\n")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run.lock_path.symlink_to(victim)
    run.events_path.symlink_to(victim)
    with pytest.raises(UnsafePathError, match=r"run\.lock"):
        RunLock(run.path).acquire()
    with pytest.raises(UnsafePathError, match=r"events\.jsonl"):
        asyncio.run(Journal(run.events_path).open())
    assert victim.read_text() == "precious"


def test_a_torn_last_journal_line_is_cut_off_before_the_next_event(tmp_path: Path) -> None:
    from core.events import LayerStarted

    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "run_started"}\n{"kind": "turn_compl')  # a crash mid-write

    async def append_one() -> None:
        journal = Journal(path)
        await journal([LayerStarted(run_id="r", layer=1, agent_ids=("a",))])
        await journal.close()

    asyncio.run(append_one())
    lines = path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["run_started", "layer_started"]  # issue 24
    assert [e["kind"] for e in read_journal(path)] == ["run_started", "layer_started"]


def test_temp_file_sweep_never_follows_links(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1", "program: {}\n")
    victim = tmp_path / "victim.tmp"
    victim.write_text("precious")
    os.symlink(victim, run.path / ".x.tmp")
    run.sweep_temp_files()
    assert victim.read_text() == "precious"


def test_a_runs_directory_that_is_a_link_is_the_users_choice_and_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``runs -> /mnt/big/runs`` is a common setup: only what is inside a run directory is guarded.
    Before, the run was refused after its directory was made, leaving an orphan behind."""
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    (tmp_path / "big").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "big", target_is_directory=True)
    runs = str(tmp_path / "runs")
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", runs]) == 0
    (run,) = (tmp_path / "big").iterdir()
    assert main(["verify", run.name, "--runs-dir", runs]) == 0
    assert "symbolic link" not in capsys.readouterr().err
