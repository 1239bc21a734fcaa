"""Detach and attach in real terminals: a run outlives the terminal that started it and its watchers.

tmux sessions stand for terminals: the one that ran ``run --detach`` is killed, two apps attach,
one kills an agent the other then shows killed, and their terminals are killed in turn; the owner
runs on to ``completed`` in ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.persistence.rundir import RunDir
from core.remote.owner import live_owner
from tests.core import programs
from tests.processes import alive
from tests.tui.test_tmux import HEIGHT, REPO, WIDTH, row_of, run_command
from tests.tui.tmux import TmuxServer, tmux_path, wait_for_file
from tests.waits import wait_until

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(180),
    pytest.mark.skipif(tmux_path() is None, reason="tmux is not installed (.ci/run installs it)"),
]


def program(tmp_path: Path) -> Path:
    """beta finishes after one turn (a finished row to see on re-attach); alpha runs on; gamma runs
    until the test kills it (its turns outlast the test's steps however busy the machine: with 6
    turns it finished before the re-attach under load, and the test waited for it running)."""
    data = programs.program(
        [
            programs.agent("alpha"),
            programs.agent("beta", max_turns=1),
            programs.agent("gamma", max_turns=200),
        ],
        [programs.agent("delta", reads=["alpha", "beta", "gamma"], max_turns=1)],
        max_turns=6,
        simulator={"latency_ms": 100, "tokens_per_second": 150, "output_tokens_per_turn": [120, 220]},
    )
    return programs.write(tmp_path, data)


@pytest.fixture
def owner_pids() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:  # never leave a background owner behind a failed test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def journal_has(run: RunDir, kind: str, agent_id: str) -> bool:
    text = run.events_path.read_text(encoding="utf-8") if run.events_path.exists() else ""
    return any(
        (event := json.loads(line)).get("kind") == kind and event.get("agent_id") == agent_id
        for line in text.splitlines()
        if line.strip()
    )


def test_a_detached_run_outlives_its_terminal_and_every_app_attached_to_it(
    tmux: TmuxServer, tmp_path: Path, owner_pids: list[int]
) -> None:
    config, runs, out = program(tmp_path), tmp_path / "runs", tmp_path / "detach.out"
    cli = shlex.join(run_command())
    detach = f"{cli} run {shlex.quote(str(config))} --detach --simulate --runs-dir {shlex.quote(str(runs))}"
    script = (
        f"s=$(date +%s%N); {detach} > {out}.tmp 2>&1; code=$?; e=$(date +%s%N); "
        f"echo TOOK_MS=$(( (e - s) / 1000000 )) EXIT=$code >> {out}.tmp; mv {out}.tmp {out}; sleep 120"
    )
    tmux.new_session("keep", "sleep 180", width=40, height=10, cwd=REPO)  # the server outlives "launch"
    tmux.new_session("launch", script, width=WIDTH, height=HEIGHT, cwd=REPO)
    report = wait_for_file(out, "run --detach to return")
    took_ms = int(re.search(r"TOOK_MS=(\d+)", report).group(1))  # type: ignore[union-attr]
    assert "EXIT=0" in report, report
    run_id = re.search(r"^run (\S+)$", report, re.M).group(1)  # type: ignore[union-attr]
    pid = int(re.search(r"owner pid (\d+)", report).group(1))  # type: ignore[union-attr]
    owner_pids.append(pid)
    run = RunDir(runs / run_id)
    print(f"run --detach returned in {took_ms} ms with run {run_id}")
    assert took_ms < 5000  # at once: the owner starts on in the background

    tmux.tmux("kill-session", "-t", "launch")  # the terminal that started the run goes away
    attach = f"{cli} attach {run_id} --runs-dir {shlex.quote(str(runs))}"
    exit_file = tmp_path / "attach1.exit"
    first = tmux.new_session(
        "attach1", f"{attach}; echo EXIT=$? > {exit_file}; sleep 120", width=WIDTH, height=HEIGHT, cwd=REPO
    )
    tmux.wait_for_screen(
        first,
        lambda s: "●" in row_of(s, "alpha") and "●" in row_of(s, "gamma") and "Budget" in s,
        "the attached app showing the agents streaming",
        within=60,
    )
    assert alive(pid)  # killing the launching terminal did not touch the owner
    tmux.wait_for_screen(first, lambda s: f"attached · owner pid {pid}" in s, "the header naming the owner")

    tmux.send_keys(first, "p")  # the cursor starts on alpha
    wait_until(lambda: journal_has(run, "agent_paused", "alpha"), "alpha paused by the owner", poll=0.1)
    tmux.wait_for_screen(first, lambda s: "‖" in row_of(s, "alpha"), "alpha shown paused")

    tmux.send_keys(first, "C-q")
    tmux.wait_for_screen(first, lambda s: "Detach" in s and "Stop the run" in s, "detach or stop?")
    tmux.send_keys(first, "d")
    assert wait_for_file(exit_file, "the first app to exit").strip() == "EXIT=0"
    left = tmux.capture(first)  # what the terminal shows once the app is gone
    assert f"detached: run {run_id} goes on in process {pid}" in left, left
    assert f"attach again: research-orchestrator attach {run_id} --runs-dir" in left, left
    owner = live_owner(run.path)
    assert owner is not None and owner.serving and owner.pid == pid  # detaching left it running

    # Two apps at once, attached again: the current state (alpha paused, beta finished with figures).
    second = tmux.new_session("attach2", f"{attach}; sleep 120", width=WIDTH, height=HEIGHT, cwd=REPO)
    third = tmux.new_session("attach3", f"{attach}; sleep 120", width=WIDTH, height=HEIGHT, cwd=REPO)
    for pane in (second, third):
        screen = tmux.wait_for_screen(
            pane,
            lambda s: "‖" in row_of(s, "alpha") and "✓" in row_of(s, "beta") and "●" in row_of(s, "gamma"),
            "alpha paused, beta finished, gamma running",
            within=60,
        )
        beta = row_of(screen, "beta")
        assert re.search(r"t1\b", beta) and re.search(r"\$\d+\.\d\d", beta), beta  # with its figures

    tmux.send_keys(second, "Down", "Down")  # gamma
    tmux.send_keys(second, "k")
    tmux.wait_for_screen(second, lambda s: "Kill agent gamma?" in s, "the kill confirmation")
    tmux.send_keys(second, "y")
    tmux.wait_for_screen(third, lambda s: "☠" in row_of(s, "gamma"), "the kill, seen by the other app")
    assert journal_has(run, "agent_killed", "gamma")

    tmux.send_keys(second, "Up", "Up", "p")  # resume alpha from the second app
    wait_until(lambda: journal_has(run, "agent_resumed", "alpha"), "alpha resumed by the owner", poll=0.1)

    for session in ("attach2", "attach3"):  # their terminals die with the apps in them
        tmux.tmux("kill-session", "-t", session)
    wait_until(lambda: not alive(pid), "the owner to finish the run", within=120, poll=0.1)
    summary = json.loads(run.summary_path.read_text(encoding="utf-8"))
    assert summary["status"] == "completed"
    statuses = {agent["id"]: agent["status"] for agent in summary["agents"]}
    assert statuses == {"alpha": "completed", "beta": "completed", "gamma": "killed", "delta": "completed"}
    assert not run.control_socket_path.exists()
