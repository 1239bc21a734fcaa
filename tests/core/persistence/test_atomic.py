"""Atomic writes: old-or-new under any failure, private modes, and disk errors in plain words."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.persistence import atomic
from core.persistence.atomic import (
    DiskError,
    as_disk_error,
    ensure_private_dir,
    remove_stale_temp_files,
    write_atomic,
    write_atomic_async,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _raise(code: int):  # type: ignore[no-untyped-def]
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


def test_writes_new_content_with_private_mode(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert _mode(target) == 0o600
    assert _siblings(target) == ["summary.json"]


def test_mode_can_be_chosen(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    write_atomic(target, b"x", mode=0o640)
    assert _mode(target) == 0o640


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    with monkeypatch.context() as m, pytest.raises(DiskError):
        m.setattr(os, step, _raise(errno.EIO))
        write_atomic(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert _siblings(target) == ["state.json"]


def test_disk_full_is_reported_with_the_path_and_the_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "20261124-100212-demo-3f2a"
    run.mkdir()
    (run / "config.yaml").write_text("program: {}\n")
    (run / "checkpoints").mkdir()
    target = run / "summary.json"
    write_atomic(target, b"old")
    with monkeypatch.context() as m, pytest.raises(DiskError) as caught:
        m.setattr(os, "write", _raise(errno.ENOSPC))
        write_atomic(target, b"new")
    assert caught.value.path == target
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (
        f"the disk is full while writing {target}; free space and resume the run: "
        "research-orchestrator resume 20261124-100212-demo-3f2a"
    )
    assert target.read_bytes() == b"old"
    assert _siblings(target) == ["checkpoints", "config.yaml", "summary.json"]


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (errno.EROFS, "is on a read-only file system"),
        (errno.EACCES, "is not writable"),
        (errno.EPERM, "is not writable"),
        (errno.EIO, "could not be written"),
    ],
)
def test_each_cause_has_its_own_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, phrase: str
) -> None:
    """The runs directory refusing files (the temp file fails) must read as what it is, not a traceback."""
    target = tmp_path / "checkpoints" / "000001-a-t001.json"
    target.parent.mkdir()
    (tmp_path / "config.yaml").write_text("program: {}\n")  # a run's directory: its resume is named
    with monkeypatch.context() as m, pytest.raises(DiskError) as caught:
        m.setattr(atomic, "_create_temp", _raise(code))
        write_atomic(target, b"x")
    assert phrase in str(caught.value)
    assert str(target.parent) in str(caught.value)
    assert f"research-orchestrator resume {tmp_path.name}" in str(caught.value)


def test_unexpected_errors_name_the_cause() -> None:
    error = as_disk_error(OSError(errno.EIO, "Input/output error"), Path("/r/x.json"))
    assert "Input/output error" in str(error)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500; covered by monkeypatch tests")
def test_a_really_unwritable_directory_raises_disk_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(DiskError, match="is not writable"):
        write_atomic(locked / "a.json", b"x")


async def test_async_write_runs_off_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        seen.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "a.json"
    await write_atomic_async(target, b"payload")
    assert target.read_bytes() == b"payload"
    assert seen and threading.main_thread().name not in seen


async def test_async_write_keeps_the_loop_responsive_on_a_slow_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        release.wait(5)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    write = asyncio.create_task(write_atomic_async(tmp_path / "a.json", b"x"))
    ticks = 0
    for _ in range(5):  # timers keep firing while the disk holds the write: the durations are the point
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and not write.done()
    release.set()
    await write


def test_ensure_private_dir_creates_parents_0700(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "r1" / "checkpoints"
    ensure_private_dir(target)
    ensure_private_dir(target)  # idempotent
    for directory in (tmp_path / "runs", tmp_path / "runs" / "r1", target):
        assert _mode(directory) == 0o700


def test_ensure_private_dir_reports_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("oops")
    with pytest.raises(DiskError):
        ensure_private_dir(tmp_path / "runs")


def test_ensure_private_dir_maps_permission_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "mkdir", _raise(errno.EROFS))
    with pytest.raises(DiskError, match="read-only file system"):
        ensure_private_dir(tmp_path / "runs")


def test_stale_temp_files_are_swept_but_real_files_kept(tmp_path: Path) -> None:
    (tmp_path / ".a.json.x1y2.tmp").write_text("torn")
    (tmp_path / "a.json").write_text("kept")
    assert remove_stale_temp_files(tmp_path) == 1
    assert _siblings(tmp_path / "a.json") == ["a.json"]


@settings(max_examples=60, deadline=None)
@given(code=st.sampled_from(sorted(errno.errorcode)), creating=st.booleans())
def test_a_disk_error_names_the_run_to_resume_only_when_there_is_one(code: int, creating: bool) -> None:
    """Outside a run (the runs directory, a run being created) the fix is to try again; inside one
    it is that run's own resume command, never a placeholder."""
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        run = Path(root) / "20261124-100212-demo-3f2a"
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_text("program: {}\n")
        outside = as_disk_error(OSError(code, os.strerror(code)), Path(root) / "runs", creating=creating)
        inside = as_disk_error(OSError(code, os.strerror(code)), run / "summary.json", creating=creating)
    assert "resume" not in outside.message and outside.message.endswith("try again")
    assert inside.message.endswith(f"research-orchestrator resume {run.name}")


def test_a_runs_directory_that_is_a_file_is_named_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main
    from tests.core import programs

    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    (tmp_path / "afile").write_text("mine\n")
    for runs_dir in ("afile", "afile/sub"):
        args = ["run", str(config), "--headless", "--simulate", "--runs-dir", str(tmp_path / runs_dir)]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "a file is in the way" in err and "--runs-dir" in err and "resume" not in err, err
    assert main(["runs", "--runs-dir", str(tmp_path / "afile")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "mine\n"
