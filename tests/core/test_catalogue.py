"""The run catalogue: what ``runs`` and the app's runs screen list, and what each run is now."""

from __future__ import annotations

import json
from pathlib import Path

from core.catalogue import list_runs
from core.persistence.rundir import RunDir, parent_record
from core.persistence.runlock import RunLock

CONFIG = "program:\n  name: Sodium-ion 2026\n"


def write_summary(run: RunDir, summary: dict[str, object]) -> None:
    run.summary_path.write_text(json.dumps(summary), encoding="utf-8")


def test_list_runs_newest_first_with_status_cost_program_parent(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = RunDir.create(runs, "20261124-100212-alpha-aaaa", CONFIG)
    write_summary(old, {"run_id": old.run_id, "status": "completed", "cost_usd": 3.25, "program": "Alpha"})
    fork = RunDir.create(runs, "20261125-090000-alpha-cccc", CONFIG)
    write_summary(
        fork, {"status": "running", "cost_usd": 1, "parent": parent_record(old.run_id, "000004-a-t002")}
    )
    broken = RunDir.create(runs, "20261124-120000-beta-bbbb", CONFIG)
    broken.summary_path.write_text("{torn")
    (runs / "not-a-run").mkdir()

    with RunLock(fork.path):  # "running" only while a live process owns it
        listing = list_runs(runs)
    assert [r.run_id for r in listing] == [fork.run_id, broken.run_id, old.run_id]
    newest, damaged, oldest = listing
    assert (oldest.status, oldest.cost_usd, oldest.program) == ("completed", 3.25, "Alpha")
    assert oldest.parent is None
    assert (newest.status, newest.cost_usd, newest.parent) == ("running", 1.0, old.run_id)
    assert (damaged.status, damaged.program) == ("unknown", "beta")
    assert newest.created > oldest.created


def test_list_runs_of_a_missing_dir_is_empty(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nothing") == []


def test_a_running_run_nobody_owns_is_interrupted(tmp_path: Path) -> None:
    """Its process was killed without a word: the summary still says running; the listing does not."""
    run = RunDir.create(tmp_path, "20261124-100212-alpha-aaaa", CONFIG)
    write_summary(run, {"status": "running", "cost_usd": 0.5})
    (entry,) = list_runs(tmp_path)
    assert (entry.status, entry.live, entry.owner_pid, entry.forked_from) == ("interrupted", False, None, "")
    with RunLock(run.path):
        (entry,) = list_runs(tmp_path)
    assert entry.status == "running"
