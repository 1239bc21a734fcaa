"""``run --detach``: the owner outlives the command, serves attachers, and its death is noticed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.control import AgentStatus, RunStatus
from core.persistence.rundir import RunDir
from core.remote.attached import attach_run
from core.remote.channel import OwnerUnreachable
from core.remote.owner import live_owner, wait_until_serving
from tests.core import programs
from tests.processes import alive, proc_stat
from tests.waits import until_published, wait_until

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def detach(config: Path, runs: Path, *flags: str) -> tuple[RunDir, int, float]:
    """Run ``run --detach --simulate``; the run, its owner's pid and how long the command took."""
    started = time.monotonic()
    result = subprocess.run(
        command("run", str(config), "--detach", "--simulate", "--runs-dir", str(runs), *flags),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run_id = lines[0].removeprefix("run ")
    assert f"research-orchestrator attach {run_id}" in result.stdout
    pid = int(result.stdout.split("owner pid ")[1].split(")")[0])
    return RunDir(runs / run_id), pid, took


def until_not_live(run: RunDir) -> None:
    """A dead process's sockets close one by one: its listener may outlive a connection by a moment."""
    wait_until(lambda: live_owner(run.path) is None, "the run to stop looking live")


def streaming_program(tmp_path: Path, max_turns: int = 4) -> Path:
    data = programs.program(
        [programs.agent(a) for a in ("alpha", "beta")],
        [programs.agent("synthesis", reads=["alpha", "beta"])],
        max_turns=max_turns,
        simulator={"latency_ms": 50, "tokens_per_second": 150, "output_tokens_per_turn": [150, 250]},
    )
    return programs.write(tmp_path, data)


async def test_a_detached_owner_is_its_own_session_and_serves_until_it_dies(
    tmp_path: Path, owners: list[int]
) -> None:
    run, pid, took = detach(streaming_program(tmp_path), tmp_path / "runs")
    owners.append(pid)
    print(f"run --detach returned in {took:.2f} s")
    assert os.getsid(pid) == pid  # a session of its own: the terminal's hangup never reaches it
    assert proc_stat(pid)[4] == "0"  # tty_nr: no controlling terminal
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"

    assert await wait_until_serving(run.path, within=60)
    owner = live_owner(run.path)
    assert owner is not None and owner.serving and owner.pid == pid

    attached = await attach_run(run.path.parent, run.run_id)
    task = asyncio.create_task(attached.run())
    await until_published(
        lambda: any(e.status is AgentStatus.RUNNING for e in attached.view.agents.values()),
        attached.bus,
        what="an agent running, seen attached",
        within=60,
    )

    os.kill(pid, signal.SIGKILL)  # the owner dies without a word
    outcome = await asyncio.wait_for(task, 30)
    assert attached.owner_gone and outcome.status is RunStatus.INTERRUPTED
    assert f"resume {run.run_id}" in (outcome.message or "")
    await asyncio.to_thread(until_not_live, run)
    with pytest.raises(OwnerUnreachable, match="not live"):
        await attach_run(run.path.parent, run.run_id)


def test_a_detached_run_left_alone_completes_and_says_so_in_summary_json(
    tmp_path: Path, owners: list[int]
) -> None:
    data = programs.program([programs.agent("alpha")], max_turns=2)
    run, pid, _ = detach(programs.write(tmp_path, data), tmp_path / "runs")
    owners.append(pid)
    # the owner is not our child: poll for its exit
    wait_until(lambda: not alive(pid), "the detached run to finish", 90, poll=0.1)
    assert json.loads(run.summary_path.read_text())["status"] == "completed"
    assert not run.control_socket_path.exists()
    assert "completed" in run.owner_log_path.read_text()


def test_runs_marks_a_live_run_with_its_owner_and_attach_refuses_a_dead_one(
    tmp_path: Path, owners: list[int]
) -> None:
    runs = tmp_path / "runs"
    run, pid, _ = detach(streaming_program(tmp_path, max_turns=8), runs)
    owners.append(pid)
    assert asyncio.run(wait_until_serving(run.path, within=60))
    listing = subprocess.run(
        command("runs", "--runs-dir", str(runs)), capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    line = next(line for line in listing.splitlines() if line.startswith(run.run_id))
    assert f"live pid {pid}" in line

    os.kill(pid, signal.SIGKILL)  # not our child: init reaps it
    until_not_live(run)
    refused = subprocess.run(
        command("attach", run.run_id, "--runs-dir", str(runs)), capture_output=True, text=True, cwd=REPO
    )
    assert refused.returncode == 2
    assert "not live" in refused.stderr and f"resume {run.run_id}" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_detach_without_an_api_key_says_so_here_and_starts_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")}
    runs = tmp_path / "runs"
    result = subprocess.run(
        command("run", str(streaming_program(tmp_path)), "--detach", "--runs-dir", str(runs)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert result.returncode == 2
    assert "no API key" in result.stderr and "--simulate" in result.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_a_run_detached_from_a_process_that_lives_on_is_reaped_when_it_ends(
    tmp_path: Path, owners: list[int]
) -> None:
    """The app starts detached runs and outlives them: an owner that ends is not left a zombie."""
    from core.detach import start_detached

    data = programs.program([programs.agent("alpha")], max_turns=1)
    run, pid = start_detached(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    owners.append(pid)
    assert os.getppid() != pid and proc_stat(pid)[1] == str(os.getpid())  # our child
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), "the owner to end and be reaped", 90, poll=0.1)
    assert json.loads(run.summary_path.read_text())["status"] == "completed"


async def test_attach_to_a_stopped_owner_gives_up_within_seconds_and_says_why(
    tmp_path: Path, owners: list[int]
) -> None:
    """A SIGSTOPped owner still accepts connections (the kernel queues them): attach waited forever.

    Driven as the app drives it (``attach_run``, then ``run()``), in this process.
    """
    runs = tmp_path / "runs"
    run, pid, _ = detach(streaming_program(tmp_path, max_turns=8), runs)
    owners.append(pid)
    assert await wait_until_serving(run.path, within=60)
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        attached = await attach_run(runs, run.run_id)
        with pytest.raises(OwnerUnreachable) as refused:
            await asyncio.wait_for(attached.run(), 30)
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    print(f"attach to a stopped owner ended after {took:.1f} s: {refused.value}")
    assert took < 10
    assert "did not answer within 5 s" in str(refused.value) and f"kill -CONT {pid}" in str(refused.value)


def test_a_run_directory_moved_mid_run_is_never_made_again_and_resumes_where_it_went(
    tmp_path: Path, owners: list[int]
) -> None:
    """Before, the owner re-created the old path with checkpoints/ and summary.json (a ghost in
    ``runs``), and the moved run was left without the turns paid after the move."""
    runs = tmp_path / "runs"
    run, pid, _ = detach(streaming_program(tmp_path, max_turns=4), runs)
    owners.append(pid)

    def saved() -> int:
        return len([p for p in run.checkpoints_dir.glob("*.json")]) if run.path.exists() else 0

    wait_until(lambda: saved() >= 2, "two turns to be checkpointed", 90)
    moved = runs / f"{run.run_id}-moved"
    os.rename(run.path, moved)
    wait_until(lambda: not alive(pid), "the owner to stop once its directory moved", 60, poll=0.1)

    assert not run.path.exists(), sorted(p.name for p in run.path.rglob("*"))
    summary = json.loads((moved / "summary.json").read_text())
    assert summary["status"] == "failed"
    log = (moved / "owner.log").read_text()
    assert f"was moved to {moved}" in log and f"resume {moved.name} --runs-dir {runs}" in log
    journal = [json.loads(line) for line in (moved / "events.jsonl").read_text().splitlines()]
    journaled = {e["checkpoint_id"] for e in journal if e["kind"] == "checkpoint_saved"}
    on_disk = {p.stem for p in (moved / "checkpoints").glob("*.json")}
    assert journaled <= on_disk  # every turn paid and saved is in the moved run

    result = subprocess.run(
        command("resume", moved.name, "--headless", "--runs-dir", str(runs)),
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((moved / "summary.json").read_text())["status"] == "completed"
    assert on_disk <= {p.stem for p in (moved / "checkpoints").glob("*.json")}
    assert [p.name for p in runs.iterdir() if not p.name.startswith(".")] == [moved.name]
