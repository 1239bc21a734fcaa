"""The run directory contract: layout, private modes, finding runs, summaries and the runs list."""

from __future__ import annotations

import errno
import json
import re
import stat
from pathlib import Path

import pytest

from core.persistence import atomic
from core.persistence.atomic import DiskError
from core.persistence.rundir import RunDir, RunRefError, id_parts, new_run_id

CONFIG = "program:\n  name: Sodium-ion 2026  # ünïcode stays byte-identical\n\r\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_ids_are_sortable_readable_and_distinct() -> None:
    run_id = new_run_id("Sodium-ion 2026!", now=1_795_000_000)
    assert re.fullmatch(r"\d{8}-\d{6}-sodium-ion-2026-[0-9a-f]{4}", run_id)
    later = new_run_id("Sodium-ion 2026!", now=1_795_000_061)
    assert later > run_id
    assert len({new_run_id("x", now=0) for _ in range(50)}) > 40
    assert new_run_id("***", now=0).split("-")[2] == "run"


def test_create_lays_out_a_private_run_directory(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", "r1", CONFIG)
    assert run.path == tmp_path / "runs" / "r1"
    assert run.config_copy_path.read_bytes() == CONFIG.encode()
    assert _mode(run.config_copy_path) == 0o600
    for directory in (tmp_path / "runs", run.path, run.checkpoints_dir, run.reports_dir):
        assert directory.is_dir() and _mode(directory) == 0o700
    assert run.summary_path == run.path / "summary.json"
    assert run.events_path == run.path / "events.jsonl"
    assert run.final_report_path == run.path / "report.md"
    assert run.report_path("market") == run.path / "reports" / "market.md"
    assert run.run_id == "r1"


def test_create_copies_config_bytes_exactly(tmp_path: Path) -> None:
    raw = b"program: {name: x}\n# \xff not even utf-8\n"
    run = RunDir.create(tmp_path, "r1", raw)
    assert run.config_copy_path.read_bytes() == raw


def test_create_refuses_an_existing_run(tmp_path: Path) -> None:
    RunDir.create(tmp_path, "r1", CONFIG)
    with pytest.raises(DiskError):
        RunDir.create(tmp_path, "r1", CONFIG)


def test_create_on_a_read_only_runs_dir_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(DiskError, match="read-only file system"):
        RunDir.create(tmp_path / "runs", "r1", CONFIG)


def write_summary(run: RunDir, summary: dict[str, object]) -> None:
    run.summary_path.write_text(json.dumps(summary), encoding="utf-8")


def test_summary_round_trips_and_tolerates_damage(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    assert run.read_summary() is None
    write_summary(run, {"run_id": "r1", "status": "running", "cost_usd": 1.5})
    assert run.read_summary() == {"run_id": "r1", "status": "running", "cost_usd": 1.5}
    run.summary_path.write_bytes(b'{"run_id": "r1", "sta')
    assert run.read_summary() is None
    run.summary_path.write_bytes(b"[1, 2]")
    assert run.read_summary() is None


def test_open_by_id_prefix_or_path(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = RunDir.create(runs, "20261124-100212-alpha-aaaa", CONFIG)
    RunDir.create(runs, "20261124-110000-beta-bbbb", CONFIG)
    assert RunDir.open(runs, "20261124-100212-alpha-aaaa").path == first.path
    assert RunDir.open(runs, "20261124-10").path == first.path
    assert RunDir.open(tmp_path / "elsewhere", str(first.path)).path == first.path


def test_open_explains_missing_and_ambiguous_refs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    RunDir.create(runs, "20261124-100212-alpha-aaaa", CONFIG)
    RunDir.create(runs, "20261124-110000-beta-bbbb", CONFIG)
    with pytest.raises(RunRefError, match=r"no run matches 'nope'.*research-orchestrator runs"):
        RunDir.open(runs, "nope")
    with pytest.raises(RunRefError, match="matches 2 runs"):
        RunDir.open(runs, "2026")
    with pytest.raises(RunRefError):
        RunDir.open(tmp_path / "missing", "x")
    with pytest.raises(RunRefError):
        RunDir.open(runs, "")


def test_sweep_removes_temp_files_left_by_a_kill(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1", CONFIG)
    (run.checkpoints_dir / ".000001-a-t001.json.abc.tmp").write_text("torn")
    (run.path / ".summary.json.def.tmp").write_text("torn")
    assert run.sweep_temp_files() == 2
    assert atomic.remove_stale_temp_files(run.path) == 0


def test_a_run_id_says_when_it_started_and_what_it_is() -> None:
    run_id = new_run_id("Sodium-ion 2026", now=1_800_000_000)
    started, slug = id_parts(run_id) or (0.0, "")
    assert (abs(started - 1_800_000_000) < 1, slug) == (True, "sodium-ion-2026")
    assert id_parts("not-a-run-id") is None
