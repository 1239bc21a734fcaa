"""The write-ahead of calls in flight reads back what it wrote, and nothing planted beside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.persistence.atomic import UnsafePathError
from core.persistence.inflight import InFlightLog


async def test_entries_read_back_and_a_malformed_one_is_skipped_not_raised(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path / "inflight")
    log.directory.mkdir()
    await log.write("north", {"closed_before": 3, "model": "m"})
    (log.directory / "south.json").write_text("[" * 100_000)  # json.loads would raise RecursionError
    (log.directory / "east.json").write_text('{"agent_id": "west"}')  # not its own entry
    assert log.read_all() == {"north": {"agent_id": "north", "closed_before": 3, "model": "m"}}
    assert oct((log.directory / "north.json").stat().st_mode & 0o777) == "0o600"


def test_a_fifo_planted_among_the_entries_is_refused_naming_it(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path / "inflight")
    log.directory.mkdir()
    os.mkfifo(log.directory / "north.json")  # a plain read would block for ever
    with pytest.raises(UnsafePathError, match=r"north\.json"):
        log.read_all()


async def test_a_released_entry_keeps_what_it_held_and_says_released_once(tmp_path: Path) -> None:
    log = InFlightLog(tmp_path / "inflight")
    log.directory.mkdir()
    await log.release("north")  # nothing written ahead: nothing to mark
    assert log.read_all() == {}
    await log.write("north", {"closed_before": 3, "spent_before": 0.5})
    await log.release("north")
    assert log.read_all() == {
        "north": {"agent_id": "north", "closed_before": 3, "spent_before": 0.5, "released": True}
    }
    await log.write("north", {"closed_before": 4, "spent_before": 0.5})  # the retry, written ahead
    assert "released" not in log.read_all()["north"]
