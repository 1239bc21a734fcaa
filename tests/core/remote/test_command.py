"""``control RUN VERB [AGENT]`` against a detached run, end to end: real processes, the simulator.

Each command is its own process, as a script would run it; what it did is read from the run's
journal and ``summary.json``, never from the command's own word alone.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.persistence.rundir import RunDir
from core.remote.command import ControlRefused, request_for
from core.remote.owner import live_owner
from tests.core import programs
from tests.core.test_detach import REPO, alive, command, detach, until_not_live
from tests.core.test_import_hygiene import heavy_in, loaded_after
from tests.waits import wait_until

pytestmark = pytest.mark.timeout(240)


SUMMARY_LINE = re.compile(
    r"summary: (?P<id>\S+) \(layer (?P<layer>\d+)\) (?P<status>\w+), (?P<turns>\d+) turns, "
    r"(?P<searches>\d+) searches, \$(?P<cost>\d+\.\d{4}), (?P<retries>\d+) retries; "
    r"\$(?P<billed>\d+\.\d{4}) billed \+ \$(?P<unconfirmed>\d+\.\d{4}) unconfirmed.*, "
    r"(?P<unconfirmed_searches>\d+) searches unconfirmed$"
)


def three_agents(tmp_path: Path) -> Path:
    """Agents streaming slowly over several turns: seconds of work left when each command arrives."""
    data = programs.program(
        [programs.agent(a) for a in ("a1", "a2", "a3")],
        [programs.agent("synthesis", reads=["a1", "a2", "a3"], max_turns=1)],
        max_turns=10,  # seconds of work left for a1 and a2 however slowly the commands start
        simulator={"latency_ms": 50, "tokens_per_second": 150, "output_tokens_per_turn": [150, 250]},
    )
    return programs.write(tmp_path, data)


def cli(runs: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(*args), "--runs-dir", str(runs)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False,
    )  # fmt: skip


def journal(run: RunDir) -> list[dict[str, Any]]:
    """The events written so far (a line still being written is left for the next look)."""
    text = run.events_path.read_text() if run.events_path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def journaled(run: RunDir, kind: str, agent: str) -> bool:
    return any(e["kind"] == kind and e.get("agent_id") == agent for e in journal(run))


def summary_agents(run: RunDir) -> dict[str, dict[str, Any]]:
    summary = run.read_summary() or {}
    return {a["id"]: a for a in summary.get("agents", [])}


def test_control_pauses_resumes_and_kills_and_attach_headless_ends_with_summary_json(
    tmp_path: Path, owners: list[int]
) -> None:
    runs = tmp_path / "runs"
    run, pid, _ = detach(three_agents(tmp_path), runs)
    owners.append(pid)

    killed = cli(runs, "control", run.run_id, "kill", "a2")  # waits while the owner starts
    assert killed.returncode == 0, killed.stderr
    assert (
        killed.stdout.strip()
        == f"run {run.run_id}: killed a2 (a call in flight is cancelled; what it wrote is kept)"
    )
    wait_until(lambda: journaled(run, "agent_killed", "a2"), "a2 killed, in the journal")

    paused = cli(runs, "control", run.run_id, "pause", "a1")
    assert paused.returncode == 0, paused.stderr
    assert "paused a1" in paused.stdout and f"control {run.run_id} resume a1" in paused.stdout
    wait_until(lambda: journaled(run, "agent_paused", "a1"), "a1 paused, in the journal")
    wait_until(
        lambda: summary_agents(run).get("a1", {}).get("status") == "paused",
        "a1 paused in summary.json",
        detail=lambda: summary_agents(run).get("a1"),
    )

    unknown = cli(runs, "control", run.run_id, "pause", "a9")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "no agent 'a9'" in unknown.stderr and "its agents: a1, a2, a3, synthesis" in unknown.stderr
    again = cli(runs, "control", run.run_id, "kill", "a2")
    assert again.returncode == 2
    assert "a2 has finished (killed): there is nothing left to kill" in again.stderr
    for refused in (unknown, again):
        assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1

    resumed = cli(runs, "control", run.run_id, "resume", "a1")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == f"run {run.run_id}: resumed a1"
    wait_until(lambda: journaled(run, "agent_resumed", "a1"), "a1 resumed, in the journal")

    # a second process follows the run to its end, as run --headless would have printed it
    follower = cli(runs, "attach", run.run_id, "--headless", timeout=180)
    assert follower.returncode == 0, follower.stderr
    summary = run.read_summary()
    assert summary is not None and summary["status"] == "completed"
    lines = [m.groupdict() for m in map(SUMMARY_LINE.search, follower.stdout.splitlines()) if m]
    shown = {line["id"]: line for line in lines}
    assert list(shown) == ["a1", "a2", "a3", "synthesis"]
    for agent in summary["agents"]:
        line = shown[agent["id"]]
        assert (line["layer"], line["status"], line["turns"], line["searches"], line["retries"]) == (
            str(agent["layer"]), agent["status"], str(agent["turns"]), str(agent["searches"]),
            str(agent["retries"]),
        )  # fmt: skip
        assert line["cost"] == f"{agent['cost_usd']:.4f}"
        assert line["billed"] == f"{agent['billed_usd']:.4f}"
        assert line["unconfirmed"] == f"{agent['unconfirmed_usd']:.4f}"
        assert line["unconfirmed_searches"] == str(agent["unconfirmed_searches"])
    assert shown["a2"]["status"] == "killed" and shown["a1"]["status"] == "completed"
    assert f"${summary['cost_usd']:.4f} spent" in follower.stdout
    assert follower.stdout.splitlines()[-1].endswith(f"report: {run.final_report_path}")

    wait_until(lambda: not alive(pid), "the owner to exit", 60, poll=0.1)
    until_not_live(run)
    gone = cli(runs, "control", run.run_id, "pause", "a1")
    assert gone.returncode == 4
    assert f"run {run.run_id} is not live" in gone.stderr and "completed" in gone.stderr


def follow(runs: Path, run: RunDir, name: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``attach RUN --headless`` in the background; its output and its log lines go to files."""
    out, err = name.with_suffix(".out"), name.with_suffix(".log")
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*command("attach", run.run_id, "--headless"), "--runs-dir", str(runs)],
            stdout=stdout, stderr=stderr, cwd=REPO,
        )  # fmt: skip
    return process, out, err


def test_control_stop_ends_the_run_interrupted_and_a_headless_follower_exits_130(
    tmp_path: Path, owners: list[int]
) -> None:
    runs = tmp_path / "runs"
    run, pid, _ = detach(three_agents(tmp_path), runs)
    owners.append(pid)
    follower, out, log = follow(runs, run, tmp_path / "follower")
    leaver, _, leaver_log = follow(runs, run, tmp_path / "leaver")
    try:
        wait_until(
            lambda: all("attached to run" in f.read_text() for f in (log, leaver_log)),
            "both followers to attach",
            60,
        )
        leaver.send_signal(signal.SIGINT)  # ctrl+c: it stops following, the run goes on
        assert leaver.wait(timeout=60) == 130
        assert "stopped following" in leaver_log.read_text() and live_owner(run.path) is not None

        wait_until(lambda: journaled(run, "agent_started", "a1"), "a1 to start")
        stopped = cli(runs, "control", run.run_id, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip().startswith(f"run {run.run_id}: stopping")
        assert follower.wait(timeout=60) == 130
    finally:
        for process in (follower, leaver):
            process.kill()
            process.wait()
    summary = run.read_summary()
    assert summary is not None and summary["status"] == "interrupted"
    output = out.read_text()
    assert f"summary: run {run.run_id} interrupted" in output
    assert f"interrupted: run {run.run_id}" in output

    wait_until(lambda: not alive(pid), "the owner to exit", 60, poll=0.1)
    until_not_live(run)
    for args in (("control", run.run_id, "stop"), ("attach", run.run_id, "--headless")):
        gone = cli(runs, *args)
        assert gone.returncode == 4, (args, gone.stderr)
        assert f"run {run.run_id} is not live" in gone.stderr
        assert f"research-orchestrator resume {run.run_id}" in gone.stderr
        assert "Traceback" not in gone.stderr


def test_control_loads_neither_the_sdk_nor_the_app(tmp_path: Path) -> None:
    """A script's one request starts fast: nothing of the SDK, the engine, the simulator or the app."""
    run = RunDir.create(tmp_path / "runs", "20261207-101010-test-program-abcd", b"")
    argv = ["control", run.run_id, "pause", "a1", "--runs-dir", str(run.path.parent)]
    script = f"from core.cli import main\nassert main({argv!r}) == 4"
    assert heavy_in(loaded_after(script)) == []


@pytest.mark.parametrize(
    ("verb", "agent", "now", "expected"),
    [
        ("pause", None, False, "pause acts on one agent"),
        ("stop", "a1", False, "to end only a1: research-orchestrator control R kill a1"),
        ("kill", "a1", True, "--now goes with stop"),
        ("explode", "a1", False, "unknown verb 'explode'"),
    ],
)
def test_arguments_that_make_no_request_say_the_fix(
    verb: str, agent: str | None, now: bool, expected: str
) -> None:
    with pytest.raises(ControlRefused, match=re.escape(expected)) as refused:
        request_for("R", verb, agent, now=now)
    assert refused.value.exit_code == 2


def test_requests_carry_the_agent_and_the_stop_now_flag() -> None:
    assert request_for("R", "kill", "a1") == {"op": "kill", "agent": "a1"}
    assert request_for("R", "stop", None) == {"op": "stop"}
    assert request_for("R", "stop", None, now=True) == {"op": "stop", "now": True}
