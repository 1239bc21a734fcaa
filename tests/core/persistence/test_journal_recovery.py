"""A journal line torn by a crash is cut off on recovery, never kept as a line that is not JSON.

Before, the next process ended the torn line and went on after it, so every reader of
``events.jsonl`` had to skip it for the life of the run (1 line of 362 in the report).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.events import LayerStarted
from core.persistence import atomic
from core.persistence.journal import Journal
from tests.core import programs
from tests.waits import wait_until

EVENT = LayerStarted(run_id="r", layer=1, agent_ids=("a",))


def append_one(path: Path) -> None:
    async def go() -> None:
        journal = Journal(path)
        await journal([EVENT])
        await journal.close()

    asyncio.run(go())


def kinds(path: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_torn_tail_is_cut_off_and_kept_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "run_started"}\n{"kind": "turn_completed", "agent_id": "ma')
    with caplog.at_level(logging.WARNING, logger="core.persistence.journal"):
        append_one(path)
    assert kinds(path) == ["run_started", "layer_started"]
    [record] = [r for r in caplog.records if r.name == "core.persistence.journal"]
    assert "torn by a crash" in record.getMessage() and '"agent_id": "ma' in record.getMessage()


def test_a_whole_event_that_lost_only_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "run_started"}\n{"kind": "agent_started"}')
    append_one(path)
    assert kinds(path) == ["run_started", "agent_started", "layer_started"]


@pytest.mark.parametrize("torn", ['{"kind": "run_sta', "x" * 200_000, "[[[[" * 10_000, "\xff\ud7ff"])
def test_a_journal_that_is_only_a_torn_line_or_a_long_one_is_cut_to_its_last_whole_line(
    tmp_path: Path, torn: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(torn.encode("utf-8", "surrogatepass"))
    append_one(path)
    assert kinds(path) == ["layer_started"]
    path.write_bytes(b'{"kind": "run_started"}\n' + torn.encode("utf-8", "surrogatepass"))
    append_one(path)
    assert kinds(path) == ["run_started", "layer_started"]


def test_a_short_write_on_a_full_disk_leaves_no_part_of_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "run_started"}\n')
    real_write_all = atomic.write_all
    failures = [True]

    def half_then_full(fd: int, data: bytes) -> None:
        if failures and len(data) > 4:
            failures.pop()
            real_write_all(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(atomic, "write_all", half_then_full)
    monkeypatch.setattr(atomic, "release_reserve_for", lambda path, cause=None: True)
    append_one(path)
    assert not failures  # the short write happened
    assert kinds(path) == ["run_started", "layer_started"]


def test_resume_after_a_crash_that_tore_the_last_line_leaves_every_line_json(tmp_path: Path) -> None:
    config = programs.write(
        tmp_path,
        programs.program(
            [programs.agent("north"), programs.agent("south")],
            [programs.agent("synthesis")],
            max_turns=3,
            simulator={"tokens_per_second": 3000},
        ),
    )
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "core.cli"]

    def checkpoints() -> list[Path]:
        return [p for d in runs.glob("*/checkpoints") for p in d.iterdir() if p.suffix == ".json"]

    process = subprocess.Popen(
        [*command, "run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(checkpoints()) >= 2, "two turns to be checkpointed")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]
    events = run_dir / "events.jsonl"
    data = events.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    events.write_bytes(data[: last + (len(data) - last) // 2])  # the last line, torn halfway
    assert not events.read_bytes().endswith(b"\n")

    result = subprocess.run(
        [*command, "resume", run_dir.name, "--headless", "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    lines = events.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        assert isinstance(json.loads(line), dict), f"line {number} of {len(lines)} is not a JSON object"
    assert "torn by a crash" in (run_dir / "run.log").read_text(encoding="utf-8")
