"""The space reserve: given back on the first full-disk error, so the write that hit it still lands."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from core.persistence import atomic
from core.persistence.atomic import RESERVE_NAME, DiskError, SpaceReserve, write_atomic


@pytest.fixture
def reserve(tmp_path: Path) -> SpaceReserve:
    (tmp_path / "checkpoints").mkdir()
    held = SpaceReserve(tmp_path, size=64 * 1024)
    held.create()
    yield held
    held.close()


def full_while_reserved(reserve: SpaceReserve, real):  # type: ignore[no-untyped-def]
    """A disk with no space while the reserve file exists (the reserve is the only free space)."""

    def write_all(fd: int, data: bytes) -> None:
        if reserve.path.exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    return write_all


def test_a_full_disk_releases_the_reserve_once_and_the_write_lands(
    reserve: SpaceReserve, monkeypatch: pytest.MonkeyPatch
) -> None:
    released: list[DiskError] = []
    reserve.on_release = released.append
    monkeypatch.setattr(atomic, "write_all", full_while_reserved(reserve, atomic.write_all))
    target = reserve.directory / "checkpoints" / "000001-a-t001.json"
    write_atomic(target, b"the paid turn")
    write_atomic(reserve.directory / "summary.json", b"{}")
    assert target.read_bytes() == b"the paid turn"
    assert not reserve.path.exists() and reserve.released
    assert len(released) == 1 and "disk is full" in str(released[0]) and str(target) in str(released[0])


def test_concurrent_writers_retry_only_once_the_space_is_free(
    reserve: SpaceReserve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers fail together; the second must not retry before the first has freed the space."""
    both_failed = threading.Barrier(2)
    real_write, real_unlink = atomic.write_all, os.unlink
    failed: set[int] = set()

    def write_all(fd: int, data: bytes) -> None:
        if reserve.path.exists():
            if threading.get_ident() not in failed:
                failed.add(threading.get_ident())
                both_failed.wait(timeout=5)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    def slow_unlink(path: object, *args: object, **kwargs: object) -> None:
        if str(path).endswith(RESERVE_NAME):
            time.sleep(0.3)  # a large file takes a moment to free: the window under test, so a duration
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic, "write_all", write_all)
    monkeypatch.setattr(atomic.os, "unlink", slow_unlink)
    errors: list[BaseException] = []

    def save(name: str) -> None:
        try:
            write_atomic(reserve.directory / "checkpoints" / name, name.encode())
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=save, args=(f"00000{i}-a-t001.json",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert sorted(p.name for p in (reserve.directory / "checkpoints").iterdir()) == [
        "000001-a-t001.json",
        "000002-a-t001.json",
    ]


def test_no_reserve_means_no_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "posix_fallocate", no_space)
    with pytest.raises(DiskError, match="not enough free space"):
        SpaceReserve(tmp_path, size=1024).create()
    assert not (tmp_path / RESERVE_NAME).exists()


def test_closing_gives_the_space_back_and_unregisters(reserve: SpaceReserve) -> None:
    reserve.close()
    assert not reserve.path.exists()
    assert not atomic.release_reserve_for(reserve.directory / "summary.json")


def test_a_run_that_cannot_hold_its_reserve_leaves_no_run_directory_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, the run directory was created first and then refused: an orphan 'unknown' run was left
    in ``runs`` for every attempt on a nearly full disk."""
    from core.cli import main
    from tests.core import programs

    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    real = os.statvfs

    def nearly_full(path: object) -> os.statvfs_result:
        info = real(path)  # type: ignore[arg-type]
        return os.statvfs_result((*info[:4], 1, *info[5:]))  # one free block for us

    monkeypatch.setattr(os, "statvfs", nearly_full)
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 2
    assert "not enough free space" in capsys.readouterr().err
    assert list(runs.iterdir()) == []
