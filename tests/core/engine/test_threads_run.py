"""Message threads in real runs: the shipped program with threads on, and a crash then a resume.

The simulator is external to the run (in this process, or its own process for the crash), so it
sees every request and keeps its threads across the run's death, as the API would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.cli import main
from core.persistence.checkpoints import CheckpointStore
from core.runner import start_run
from core.simulator import Simulator, SimulatorSettings
from tests.core import programs
from tests.core.engine.conftest import simulator_process
from tests.core.engine.test_crash import conversation_of, stats
from tests.waits import wait_until


def with_threads(path: Path, on: bool, *, caching: bool = True) -> Path:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["defaults"] = {**data["defaults"], "message_threads": on, "caching": {"enabled": caching}}
    return programs.write(path.parent / f"threads-{on}-caching-{caching}", data)


async def run_on(sim: Simulator, config: Path, runs: Path) -> tuple[Path, dict[str, Any]]:
    orchestrator = await start_run(config, runs, simulate=True, base_url=sim.base_url)
    run_dir = (await orchestrator.run()).run_dir
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def report_shape(run_dir: Path, summary: dict[str, Any]) -> dict[str, list[str]]:
    """Each agent's report as its headings: what a reader finds where."""
    return {
        a["id"]: [line for line in (run_dir / a["report"]).read_text().splitlines() if line.startswith("#")][
            :3
        ]
        for a in summary["agents"]
    }


@pytest.mark.parametrize("caching", [True, False])
async def test_the_shipped_program_with_threads_completes_with_the_same_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caching: bool
) -> None:
    shipped = programs.default_program_fast(tmp_path / "program")
    done: dict[bool, tuple[Path, dict[str, Any]]] = {}
    requests: dict[bool, list[Any]] = {}
    for on in (False, True):
        async with Simulator(
            SimulatorSettings(seed=7, pause_turn_probability=0.15), record_bodies=True
        ) as sim:
            done[on] = await run_on(sim, with_threads(shipped, on, caching=caching), tmp_path / f"runs-{on}")
            requests[on] = [r for r in sim.stats.recent if r.path == "/v1/messages"]
    (off_dir, off), (on_dir, threaded) = done[False], done[True]
    assert threaded["status"] == off["status"] == "completed"
    assert [(a["id"], a["status"]) for a in threaded["agents"]] == [
        (a["id"], a["status"]) for a in off["agents"]
    ]
    assert report_shape(on_dir, threaded) == report_shape(off_dir, off)
    assert main(["verify", str(on_dir)]) == 0, capsys.readouterr().out

    assert all(r.thread is None for r in requests[False])
    assert all(r.status == 200 for r in requests[True])  # nothing refused: no continue went astray
    kinds = [r.thread for r in requests[True]]
    assert kinds.count("create") >= len(threaded["agents"])
    continues = [r for r in requests[True] if r.thread == "continue"]
    if caching:
        # A continue is sent only where it reads the prompt cache as the whole request would.
        assert all(r.usage and r.usage["cache_read_input_tokens"] > 0 for r in continues)
    else:
        # Nothing to read: every later call continues, carrying only its new turn.
        assert len(continues) >= 2 * len(threaded["agents"])
        sent = {on: sum(r.bytes for r in requests[on]) / len(requests[on]) for on in (False, True)}
        assert sent[True] < 0.5 * sent[False], sent


@pytest.fixture
def threads_simulator() -> Iterator[str]:
    with simulator_process(
        "--seed", "3", "--latency-ms", "150", "--tokens-per-second", "2000", "--pause-turn-probability", "0.2"
    ) as url:
        yield url


def test_kill_9_mid_layer_then_resume_replays_threads_and_repeats_no_paid_turn(
    tmp_path: Path, threads_simulator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = programs.program(
        [programs.agent(name) for name in ("north", "south", "east")],
        [programs.agent("synthesis")],
        max_turns=4,
        defaults={"message_threads": True, "caching": {"enabled": False}},  # every later call continues
    )
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-threads", "ANTHROPIC_BASE_URL": threads_simulator}
    command = [sys.executable, "-m", "core.cli", "run", str(config), "--headless", "--runs-dir", str(runs)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def layer_one_midway() -> bool:
        run_dirs = [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.exists() else []
        if not run_dirs:
            return False
        continues = [r for r in stats(threads_simulator)["recent"] if r.get("thread") == "continue"]
        return len(continues) >= 3 and len(CheckpointStore(run_dirs[0]).list()) >= 3

    wait_until(layer_one_midway, "layer 1 to have continued threads and saved turns", within=60)
    kill_sent = time.time()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = time.time()
    [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]
    interrupted = run_dir / "summary.json"
    assert not interrupted.exists() or json.loads(interrupted.read_text()).get("status") != "completed"

    resumed = subprocess.run(
        [sys.executable, "-m", "core.cli", "resume", run_dir.name, "--headless", "--runs-dir", str(runs)],
        cwd=tmp_path, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert main(["verify", str(run_dir)]) == 0, capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and all(a["status"] == "completed" for a in summary["agents"])

    records = [r for r in stats(threads_simulator)["recent"] if r["path"] == "/v1/messages"]
    # The resumed run holds no thread: each conversation it goes on with starts with a create (a replay).
    first_after: dict[str, str | None] = {}
    for record in records:
        if record["received_at"] > killed_at and record["conversation"] not in first_after:
            first_after[record["conversation"]] = record["thread"]
    assert first_after and all(kind == "create" for kind in first_after.values()), first_after
    resumed_continues = [r for r in records if r["thread"] == "continue" and r["received_at"] > killed_at]
    assert resumed_continues, "threads go on after the replay"

    # No paid turn repeated: a call (a conversation at one length, threaded or whole) completed twice
    # only if the kill came before its checkpoint was written.
    store = CheckpointStore(run_dir)
    saved: dict[str, list[float]] = {}
    for info in store.list():
        messages = store.load(info.id).messages
        if messages:
            text = messages[0]["content"][0]["text"]
            saved.setdefault(conversation_of(text), []).append(info.created_at)
    completed: dict[tuple[str, int], float] = {}
    repeated = 0
    again: list[Any] = []
    for record in records:
        if record["status"] != 200 or not record.get("stop_reason"):
            continue
        turn = (record["conversation"], record["prompt_tokens"])  # grows with every call of a conversation
        if turn in completed:
            repeated += 1
            again.append(
                (turn, record["thread"], record["stop_reason"], completed[turn], record["received_at"])
            )
            first = completed[turn]
            # Asked again only by the resumed run, and only if the first answer was never saved
            # (it ended after the kill, so the run never read it, or the kill came before its save).
            assert record["received_at"] > killed_at, ("a turn was asked twice in one process", turn)
            saves = saved.get(record["conversation"], [])
            assert not any(first <= t <= kill_sent for t in saves), ("a saved turn was sent again", turn)
        else:
            completed[turn] = record["at"]
    assert repeated <= 3, (kill_sent, killed_at, again)  # at most the turn each agent had in flight
    print(f"threads: {len(first_after)} conversations replayed, {repeated} turns asked again after the kill")
