"""The journal as a followed file: offsets that match the bytes, and text written promptly when watched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.events import Event, LayerStarted, TextStreamed
from core.persistence import journal as journal_module
from core.persistence.journal import TEXT_DELAY_SECONDS, Journal


def text(agent: str, chunk: str) -> TextStreamed:
    return TextStreamed(run_id="r", agent_id=agent, text=chunk)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(journal_module.time, "monotonic", fake)
    return fake


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_each_write_reports_its_events_and_an_offset_equal_to_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "from_an_earlier_owner"}\n')
    reports: list[tuple[list[Event], int]] = []
    journal = Journal(path, on_written=lambda events, offset: reports.append((list(events), offset)))
    await journal.open()
    assert journal.offset == path.stat().st_size
    await journal([LayerStarted(run_id="r", layer=1), text("a", "héllo "), text("a", "wörld")])
    await journal([LayerStarted(run_id="r", layer=2)])
    await journal.close()
    assert [offset for _, offset in reports] == sorted(offset for _, offset in reports)
    assert reports[-1][1] == path.stat().st_size  # bytes, not characters
    written = [e for events, _ in reports for e in events]
    assert [e.kind for e in written] == [row["kind"] for row in lines(path)[1:]]


async def test_unwatched_text_waits_for_the_agent_s_next_event(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "events.jsonl"
    journal = Journal(path, prompt=lambda: False)
    await journal.open()
    await journal([text("a", "one ")])
    clock.now += 10
    await journal([text("a", "two ")])
    assert path.read_text() == ""
    await journal([LayerStarted(run_id="r", agent_id="a", layer=1)])
    assert [row.get("text") for row in lines(path)] == ["one two ", None]


async def test_watched_text_goes_out_once_it_has_waited_the_delay(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "events.jsonl"
    watched = [True]
    journal = Journal(path, prompt=lambda: watched[0])
    await journal.open()
    await journal([text("a", "one "), text("b", "uno ")])
    assert path.read_text() == ""  # not yet due
    clock.now += TEXT_DELAY_SECONDS
    await journal([text("a", "two ")])
    assert sorted(row["text"] for row in lines(path)) == ["one two ", "uno "]
    watched[0] = False
    await journal([text("a", "three ")])
    clock.now += 10
    await journal([text("a", "four ")])
    assert len(lines(path)) == 2  # nobody watching: coalesced again
