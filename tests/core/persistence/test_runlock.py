"""One process owns a run; a second is refused clearly; a killed owner never blocks a resume."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core.persistence.runlock import RunLock, RunLocked

HOLD_LOCK = """
import sys
from core.persistence.runlock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until killed, or until the test (our stdin's writer) is gone
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "20261124-100212-demo-3f2a"
    path.mkdir()
    return path


def test_second_lock_in_the_same_process_is_refused_with_pid_and_time(run_dir: Path) -> None:
    with RunLock(run_dir) as first:
        assert first.held
        with pytest.raises(RunLocked) as caught:
            RunLock(run_dir).acquire()
    message = str(caught.value)
    assert message.startswith(
        f"run {run_dir.name} is already open in another process (pid {os.getpid()} since "
    )
    assert message.endswith(
        f"); close it first, or watch and steer it with: research-orchestrator attach {run_dir.name}"
    )
    assert caught.value.pid == os.getpid()
    assert (run_dir / "run.lock").stat().st_mode & 0o777 == 0o600


def test_lock_is_free_again_after_release(run_dir: Path) -> None:
    with RunLock(run_dir):
        pass
    with RunLock(run_dir) as again:
        assert again.held
    assert not again.held


async def test_async_context_manager(run_dir: Path) -> None:
    async with RunLock(run_dir):
        with pytest.raises(RunLocked):
            RunLock(run_dir).acquire()
    async with RunLock(run_dir):
        pass


def test_another_process_is_refused_and_a_sigkilled_owner_leaves_no_stale_lock(run_dir: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    ) as owner:  # its pipes closed at the end
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline().strip() == "locked"
            with pytest.raises(RunLocked, match=f"pid {owner.pid} since"):
                RunLock(run_dir).acquire()
        finally:
            owner.send_signal(signal.SIGKILL)
            owner.wait(10)
    assert (run_dir / "run.lock").exists()  # the file stays; the kernel dropped the flock
    with RunLock(run_dir) as resumed:
        assert resumed.held


def test_a_garbled_lock_file_still_gives_a_clear_refusal(run_dir: Path) -> None:
    with RunLock(run_dir):
        (run_dir / "run.lock").write_text("garbage")
        with pytest.raises(RunLocked, match="pid unknown"):
            RunLock(run_dir).acquire()


def test_taking_a_run_makes_its_files_private_again_and_follows_no_link(tmp_path: Path) -> None:
    """A run copied or unpacked with wide modes (``cp -r`` under umask 0, a tarball) is made 0700/0600
    by the process that takes it, so a resume never appends research to world-readable files."""
    from core.persistence.rundir import RunDir

    run = RunDir.create(tmp_path / "runs", "r1", "program: {}\n")
    (run.checkpoints_dir / "000001-a-t001.json").write_text("{}")
    run.events_path.write_text("{}\n")
    victim = tmp_path / "victim"
    victim.write_text("mine")
    victim.chmod(0o644)
    (run.reports_dir / "elsewhere.md").symlink_to(victim)
    for path in [run.path, *run.path.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o777 if path.is_dir() else 0o666)
    with RunLock(run.path):
        modes = {
            p.relative_to(run.path).as_posix(): stat.S_IMODE(p.lstat().st_mode)
            for p in [run.path, *run.path.rglob("*")]
            if not p.is_symlink()
        }
    expected = {name: 0o700 if (run.path / name).is_dir() else 0o600 for name in modes}
    assert modes == expected
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644, "a link's target is never touched"
