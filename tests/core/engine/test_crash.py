"""KILL, TERM, INT or HUP a headless run at random moments, resume each time: nothing paid is lost or redone.

The simulator runs in its own process so it outlives every crash and sees every request.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.persistence.checkpoints import CheckpointStore
from tests.core import programs
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[3]
KILLS = 24
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_simulator/stats", timeout=5) as response:
        return json.loads(response.read())


def serving(url: str) -> bool:
    try:
        stats(url)
    except OSError:
        return False
    return True


@pytest.fixture
def simulator_process():
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.simulator",
            "--port",
            str(port),
            "--seed",
            "3",
            "--latency-ms",
            "120",
            "--tokens-per-second",
            "1500",
            "--pause-turn-probability",
            "0.2",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: serving(url), "the simulator to answer")
    yield url
    process.terminate()
    process.wait(10)


def conversation_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@pytest.mark.slow
def test_signals_of_every_kind_at_random_moments_then_resume_loses_and_redoes_nothing(
    tmp_path: Path, simulator_process: str
) -> None:
    data = programs.program(
        [programs.agent(name) for name in ("north", "south", "east")],
        [programs.agent("synthesis")],
        max_turns=5,
    )
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-crash-test", "ANTHROPIC_BASE_URL": simulator_process}
    rng = random.Random(20261124)
    kills: list[float] = []
    sent: list[int] = []
    command = [sys.executable, "-m", "core.cli", "run", str(config), "--headless", "--runs-dir", str(runs)]
    finished = None
    for attempt in range(KILLS + 40):
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,  # a SIGINT or SIGHUP for it alone, as from its own terminal
        )  # fmt: skip
        signum = rng.choice(SIGNALS)
        if len(kills) < KILLS:
            try:
                process.wait(timeout=rng.uniform(0.4, 2.0))  # the duration is the point: a random moment
            except subprocess.TimeoutExpired:
                process.send_signal(signum)
                process.wait(timeout=60)
                kills.append(time.time())
                sent.append(signum)
        else:
            process.wait(timeout=180)
        err = process.stderr.read().decode() if process.stderr else ""
        if process.returncode == 0:
            finished = attempt
            break
        # KILL ends it at once; INT, TERM and HUP stop it with its state saved (130), or end it
        # before it has anything to save (still starting): never a traceback.
        assert process.returncode in (
            -signal.SIGKILL,
            130,
            -signal.SIGTERM,
            -signal.SIGHUP,
            -signal.SIGINT,
        ), err
        assert "Traceback" not in err, err
        run_dirs = [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.exists() else []
        if run_dirs:
            command = [sys.executable, "-m", "core.cli", "resume", run_dirs[0].name, "--headless",
                       "--runs-dir", str(runs)]  # fmt: skip
    assert finished is not None and len(kills) >= KILLS
    assert set(sent) == set(SIGNALS), "every kind of signal was sent"

    [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert all(a["status"] == "completed" for a in summary["agents"])
    infos = CheckpointStore(run_dir).list()
    assert infos and all(info.status == "ok" for info in infos), [
        i.problem for i in infos if i.status != "ok"
    ]

    # A completed response may be asked for again only if the crash came before it was saved.
    # A turn is saved by the first checkpoint of its number: later ones of the same turn save a
    # failed attempt's charge (before a retry, or as a stop cut a call off), not a response.
    saved_at: dict[str, list[float]] = {}
    turns_saved: set[tuple[str, int]] = set()
    for info in sorted(infos, key=lambda i: i.seq):
        messages = CheckpointStore(run_dir).load(info.id).messages
        if not messages or (info.agent_id, info.turn) in turns_saved:
            continue
        turns_saved.add((info.agent_id, info.turn))
        saved_at.setdefault(conversation_of(messages[0]["content"][0]["text"]), []).append(info.created_at)
    completed: dict[str, float] = {}
    records = stats(simulator_process)["recent"]
    for record in records:
        if record["status"] != 200 or not record.get("stop_reason"):
            continue
        body = record["body_sha256"]
        if body in completed:
            first_done = completed[body]
            crash = min(k for k in kills if k > first_done)
            saves = saved_at.get(record["conversation"], [])
            assert not any(first_done <= t <= crash for t in saves), "a saved turn was sent to the API again"
        else:
            completed[body] = record["at"]
