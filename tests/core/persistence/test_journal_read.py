"""Reading ``events.jsonl`` back as a stream: kinds filtered, junk and over-long lines skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.persistence import journal_read
from core.persistence.journal import inherit_records
from core.persistence.journal_read import iter_journal, read_journal


def write(path: Path, *lines: str | bytes) -> None:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))


def test_only_the_kinds_asked_for_are_read_and_junk_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    saved = {"kind": "checkpoint_saved", "checkpoint_id": "000001-a-t001"}
    text = {"kind": "text_streamed", "text": 'mentions "checkpoint_saved" in its text'}
    write(path, json.dumps(text), "[[[[", "5", json.dumps(saved), '{"kind": "checkpoint_saved"')
    assert list(iter_journal(path, ["checkpoint_saved"])) == [saved]
    assert read_journal(path) == [text, saved]


def test_a_line_longer_than_the_limit_is_skipped_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_read, "MAX_LINE_BYTES", 64)
    path = tmp_path / "events.jsonl"
    before, after = {"kind": "a", "n": 1}, {"kind": "b", "n": 2}
    huge = json.dumps({"kind": "a", "text": "x" * 500})
    write(path, json.dumps(before), huge, json.dumps(after))
    assert read_journal(path) == [before, after]


def test_a_fork_inherits_the_records_of_the_checkpoints_it_copied(tmp_path: Path) -> None:
    source, target = tmp_path / "parent.jsonl", tmp_path / "fork.jsonl"
    records = [{"kind": "checkpoint_saved", "checkpoint_id": f"00000{i}-a-t00{i}", "sha256": "f" * 64}
               for i in (1, 2, 3)]  # fmt: skip
    write(source, *(json.dumps(r) for r in records), json.dumps({"kind": "turn_completed"}))
    assert inherit_records(source, target, "checkpoint_saved", ["000001-a-t001", "000002-a-t002"],
                           "checkpoint_id") == 2  # fmt: skip
    assert read_journal(target) == records[:2]
