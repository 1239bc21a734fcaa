"""The shipped program stopped by one SIGINT mid-layer-1, as a user stops ``run --headless``: exit 130
within the grace period, nothing unconfirmed, and the resume asks the API for no answer that had
arrived before the stop. The simulator runs in its own process (with the shipped program's simulator
settings, a little faster) so that it sees every request of both processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.core import programs
from tests.core.engine.conftest import simulator_process
from tests.core.engine.test_crash import stats
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[3]
GRACE_S = 60.0  # the default grace: research_config.yaml does not change it

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def shipped_simulator() -> Any:
    """A simulator process paced as the shipped config's ``simulator`` block, streaming 3x faster."""
    shipped = yaml.safe_load(programs.DEFAULT_CONFIG.read_text(encoding="utf-8"))["simulator"]
    with simulator_process(
        "--seed", str(shipped["seed"]),
        "--latency-ms", str(shipped["latency_ms"]),
        "--tokens-per-second", str(shipped["tokens_per_second"] * 3),
        "--pause-turn-probability", str(shipped["pause_turn_probability"]),
    ) as url:  # fmt: skip
        yield url


def journal(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def turns_completed(runs: Path) -> int:
    path = next(runs.glob("[!.]*/events.jsonl"), None)
    if path is None:
        return 0
    return path.read_text(encoding="utf-8").count('"kind": "turn_completed"')


def command(url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-stop-test", "ANTHROPIC_BASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args, "--headless"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,  # a SIGINT for it alone, as a ctrl+c in its own terminal
    )  # fmt: skip


def completed_bodies(url: str) -> set[str]:
    """Request bodies whose whole answer the simulator sent."""
    return {
        r["body_sha256"]
        for r in stats(url)["recent"]
        if r["status"] == 200 and r.get("stop_reason") and r["path"].endswith("/messages")
    }


def test_one_sigint_mid_layer_1_stops_cleanly_and_the_resume_rebuys_nothing(
    tmp_path: Path, shipped_simulator: str
) -> None:
    runs = tmp_path / "runs"
    first = command(shipped_simulator, "run", str(programs.DEFAULT_CONFIG), "--runs-dir", str(runs))
    wait_until(lambda: turns_completed(runs) >= 3, "three turns of layer 1", 120)
    sent = time.monotonic()
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=GRACE_S + 30)
    took = time.monotonic() - sent
    assert first.returncode == 130, err.decode()
    assert took < GRACE_S + 10, "within the grace (and the interpreter's exit)"
    assert "Traceback" not in err.decode()
    [run] = [p for p in runs.iterdir() if not p.name.startswith(".")]
    events = journal(run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert all(a["layer"] == 1 or a["status"] == "pending" for a in summary["agents"]), "mid-layer-1"
    stopping = [e for e in events if e["kind"] == "run_stopping"]
    assert stopping and not any(e["now"] for e in stopping), "one SIGINT: a clean stop"
    assert "stopping: no new call starts" in err.decode() or stopping[0]["in_flight"] == []
    unconfirmed = [e for e in events if e["kind"] == "attempt_charged" and e["basis"] != "reported"]
    assert unconfirmed == [], "a clean stop adds nothing unconfirmed"
    assert summary.get("unconfirmed_usd", 0) == 0
    before = completed_bodies(shipped_simulator)
    requests_before = stats(shipped_simulator)["requests"]
    recorded_before = len(stats(shipped_simulator)["recent"])

    second = command(shipped_simulator, "resume", run.name, "--runs-dir", str(runs))
    # every agent stopped mid-layer-1 sends its next request at once; wait until each has
    wait_until(lambda: stats(shipped_simulator)["requests"] >= requests_before + 5, "the resume's calls", 60)
    second.send_signal(signal.SIGINT)
    second.communicate(timeout=GRACE_S + 30)
    assert second.returncode == 130
    resumed = stats(shipped_simulator)["recent"][recorded_before:]
    again = {r["body_sha256"] for r in resumed if r["path"].endswith("/messages")} & before
    assert again == set(), "the resume asked again for an answer that had arrived before the stop"
