"""States that tell the truth: INT, TERM and HUP stop a headless run within 2 s with its state
saved (``interrupted``), in every state; after SIGKILL, ``runs`` says ``interrupted``, with the cost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.persistence.checkpoints import CheckpointStore
from tests.core import programs
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[3]
HONOURED_WITHIN_S = 2.0  # the state is saved and the summary says so
EXITED_WITHIN_S = 10.0  # the interpreter's own teardown comes on top, slow on a loaded machine


def start(tmp_path: Path, *command: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    return subprocess.Popen(
        [sys.executable, "-m", "core.cli", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a SIGHUP for it alone, as when its terminal closes
    )


def slow_program(tmp_path: Path) -> Path:
    data = programs.program(
        [programs.agent("a"), programs.agent("b")],
        [programs.agent("c")],
        max_turns=3,
        simulator={"latency_ms": 100, "tokens_per_second": 2000},
    )
    return programs.write(tmp_path, data)


def checkpoints(runs: Path) -> list[Path]:
    return [p for run in runs.glob("[!.]*") for p in (run / "checkpoints").glob("*.json")]


def status(runs: Path) -> str | None:
    try:
        [run] = list(runs.glob("[!.]*"))
        return str(json.loads((run / "summary.json").read_text())["status"])
    except (ValueError, OSError):
        return None


def stop_and_time(process: subprocess.Popen[bytes], signum: int, runs: Path) -> tuple[float, float]:
    """Seconds until the summary says ``interrupted`` (inf if it never does), and until exit."""
    sent = time.monotonic()
    process.send_signal(signum)
    saved = float("inf")
    while process.poll() is None or saved == float("inf"):
        if saved == float("inf") and status(runs) == "interrupted":
            saved = time.monotonic() - sent
        if process.poll() is not None and saved == float("inf"):
            break
        assert time.monotonic() - sent < 30
        time.sleep(0.01)  # a measurement: the poll's step is its resolution
    return saved, time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=["HUP", "TERM", "INT"])
def test_a_stop_signal_mid_run_saves_state_and_resume_completes(tmp_path: Path, signum: int) -> None:
    runs = tmp_path / "runs"
    process = start(
        tmp_path, "run", str(slow_program(tmp_path)), "--headless", "--simulate", "--runs-dir", str(runs)
    )
    wait_until(lambda: len(checkpoints(runs)) >= 2, "two checkpoints", 60)
    saved, exited = stop_and_time(process, signum, runs)
    assert process.returncode == 130, process.stderr.read() if process.stderr else b""
    assert saved < HONOURED_WITHIN_S and exited < EXITED_WITHIN_S
    [run] = list(runs.glob("[!.]*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in summary["agents"]))
    assert all(info.ok for info in CheckpointStore(run).list())
    if signum != signal.SIGHUP:
        return  # one resume shows the saved state is whole; the other signals stop the same way
    resumed = start(tmp_path, "resume", run.name, "--headless", "--runs-dir", str(runs))
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read() if resumed.stderr else b""
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM], ids=["HUP", "TERM"])
def test_a_stop_signal_while_starting_ends_it_quickly(tmp_path: Path, signum: int) -> None:
    runs = tmp_path / "runs"
    process = start(
        tmp_path, "run", str(slow_program(tmp_path)), "--headless", "--simulate", "--runs-dir", str(runs)
    )
    # the run directory is being created: set-up in progress (poll tightly to land inside it)
    wait_until(runs.exists, "the runs directory", 60, poll=0.005)
    process.send_signal(signum)
    process.wait(timeout=EXITED_WITHIN_S)
    assert process.returncode in (130, -signum)
    err = process.stderr.read().decode() if process.stderr else ""
    assert "Traceback" not in err


def test_after_sigkill_runs_says_interrupted_with_the_cost_paid(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    process = start(
        tmp_path, "run", str(slow_program(tmp_path)), "--headless", "--simulate", "--runs-dir", str(runs)
    )
    wait_until(lambda: len(checkpoints(runs)) >= 3, "three checkpoints", 60)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    [run] = list(runs.glob("[!.]*"))
    assert json.loads((run / "summary.json").read_text())["status"] == "running"  # what it could write
    spent = max(info.cost_usd for info in CheckpointStore(run).list() if info.ok)
    assert spent > 0
    listed = subprocess.run(
        [sys.executable, "-m", "core.cli", "runs", "--runs-dir", str(runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(run.name)]
    assert line.split()[1] == "interrupted"
    assert float(line.split()[2]) >= round(spent, 4) - 1e-4
