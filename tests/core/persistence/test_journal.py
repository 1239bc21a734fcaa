"""A failed journal write is never shrugged off: the journal stops and hands the error on, once."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from core.events import LayerStarted
from core.persistence import journal as journal_module
from core.persistence.atomic import DiskError, as_disk_error
from core.persistence.journal import Journal


def layer(number: int) -> LayerStarted:
    return LayerStarted(run_id="r", layer=number, agent_ids=("a",))


def failing_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """From now on every journal write fails with an I/O error; returns what was attempted."""
    attempted: list[bytes] = []

    def failing(fd: int, data: bytes, path: Path) -> int:
        attempted.append(data)
        raise as_disk_error(OSError(errno.EIO, "Input/output error"), path)

    monkeypatch.setattr(journal_module, "_append", failing)
    return attempted


async def test_a_failed_write_goes_to_on_failed_once_and_nothing_is_written_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    failures: list[DiskError] = []
    journal = Journal(path, on_failed=failures.append)
    await journal([layer(1)])
    before = path.read_bytes()
    attempted = failing_writes(monkeypatch)
    await journal([layer(2)])
    await journal([layer(3)])  # the run is stopping: its events are not tried again
    await journal.close()
    assert len(attempted) == 1 and len(failures) == 1
    assert failures[0] is journal.failed and failures[0].path == path
    assert path.read_bytes() == before


async def test_without_an_owner_to_tell_a_failed_write_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "events.jsonl")
    await journal.open()
    failing_writes(monkeypatch)
    with pytest.raises(DiskError, match=r"events\.jsonl"):
        await journal([layer(1)])
