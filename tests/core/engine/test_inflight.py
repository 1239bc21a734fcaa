"""A run killed (SIGKILL) while calls are in flight: the resume charges what those calls may have cost.

The calls were billed (the simulator, in its own process, counts a stream the client walked away
from as billed in full) but never settled: without the write-ahead record the resumed ledger
would not know of them, and its caps would let the run spend that money again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.persistence.rundir import RunDir
from core.reports.verify import verify_run
from tests.core import programs
from tests.core.engine.conftest import simulator_process
from tests.core.engine.test_crash import stats
from tests.waits import wait_until


def journal(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in run_dir.joinpath("events.jsonl").read_text().splitlines() if line]


@pytest.mark.timeout(180)
def test_calls_in_flight_at_a_kill_are_charged_on_resume_so_the_ledger_holds_all_that_was_billed(
    tmp_path: Path, slow_simulator: str
) -> None:
    data = programs.program([programs.agent("north"), programs.agent("south")], max_turns=3)
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-inflight-test", "ANTHROPIC_BASE_URL": slow_simulator}
    run = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "run", str(config), "--headless", "--runs-dir", str(runs)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def streaming_second_turns() -> bool:  # both agents past a checkpoint, and mid-call again
        dirs = list(runs.iterdir()) if runs.exists() else []
        if not dirs or not dirs[0].joinpath("events.jsonl").exists():
            return False
        events = journal(dirs[0])
        return all(
            any(e["kind"] == "text_streamed" and (e.get("agent_id"), e.get("turn")) == (a, 2) for e in events)
            for a in ("north", "south")
        )

    wait_until(streaming_second_turns, "both agents streaming their second turn", 60, poll=0.05)
    run.send_signal(signal.SIGKILL)
    run.wait(10)
    (run_dir,) = runs.iterdir()
    resume = subprocess.run(
        [sys.executable, "-m", "core.cli", "resume", run_dir.name, "--headless", "--runs-dir", str(runs)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert resume.returncode == 0, resume.stderr

    lost = [e for e in journal(run_dir) if e["kind"] == "attempt_charged" and e["outcome"] == "process_ended"]
    assert {e["agent_id"] for e in lost} == {"north", "south"}  # each had a call in flight
    inputs = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    billed_in = billed_out = 0
    for record in stats(slow_simulator)["recent"]:
        usage = record.get("usage") or {}
        billed_in += sum(int(usage.get(key) or 0) for key in inputs)
        billed_out += int(usage.get("output_tokens") or 0)
    summary = json.loads(run_dir.joinpath("summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["output_tokens"] >= billed_out  # the worst case is a bound: >=, and the in-flight
    assert sum(summary[key] for key in inputs) >= billed_in  # calls' bill is in it
    assert verify_run(RunDir(run_dir)).problems == []


@pytest.mark.timeout(180)
def test_an_attempt_the_api_refused_before_it_ran_is_not_charged_by_a_resume_after_a_kill(
    tmp_path: Path,
) -> None:
    # The first call is refused (429: billed nothing) and its retry waits a minute; the process is
    # killed in that wait, its write-ahead entry still naming the refused attempt.
    brief = "Research the north angle. [sim:fault=rate_limit]"
    data = programs.program([programs.agent("north", brief)], max_turns=2)
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    with simulator_process("--seed", "5", "--retry-after-s", "60") as url:
        env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-inflight-test", "ANTHROPIC_BASE_URL": url}
        run = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "run", str(config), "--headless", "--runs-dir", str(runs)],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def waiting_to_retry() -> bool:
            dirs = list(runs.iterdir()) if runs.exists() else []
            if not dirs or not dirs[0].joinpath("events.jsonl").exists():
                return False
            return any(e["kind"] == "retry_scheduled" for e in journal(dirs[0]))

        wait_until(waiting_to_retry, "the refused call's retry to be scheduled", 60, poll=0.05)
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        (run_dir,) = runs.iterdir()
        entry = json.loads(RunDir(run_dir).inflight_dir.joinpath("north.json").read_text())
        assert entry["released"] is True and entry["worst_usage"]  # its bound kept, marked billed nothing
        resume = subprocess.run(
            [sys.executable, "-m", "core.cli", "resume", run_dir.name, "--headless", "--runs-dir", str(runs)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150, check=False,
        )  # fmt: skip
    assert resume.returncode == 0, resume.stderr
    assert "in flight when the run's process ended" not in resume.stderr
    charged = [e for e in journal(run_dir) if e["kind"] == "attempt_charged"]
    assert charged == []  # the refused attempt was billed nothing, before the kill and after it
    summary = json.loads(run_dir.joinpath("summary.json").read_text())
    assert summary["status"] == "completed" and summary["unconfirmed_usd"] == 0
    assert summary["cost_usd"] == pytest.approx(summary["billed_usd"]) and summary["cost_usd"] > 0
    assert verify_run(RunDir(run_dir)).problems == []
