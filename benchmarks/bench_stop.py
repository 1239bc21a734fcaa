"""Stop waste: the unconfirmed dollars a clean stop of the shipped program mid-layer-1 leaves (issue 21).

``research-orchestrator run research_config.yaml --headless --simulate`` in a process of its own,
exactly as shipped (its simulator, its pacing), gets one SIGINT once some turns of layer 1 have
completed: the first interrupt stops cleanly, so the calls in flight finish their turn and are
saved, and nothing is charged for an answer that never arrived. The figure is the unconfirmed
dollars the run holds afterwards (``unconfirmed_usd`` of ``summary.json``, or, before that field,
the ``attempt_charged`` events of its journal whose basis is not the usage the API reported):
the goal is 0. Also recorded: the seconds from the signal to the exit (within the 60 s grace), the
exit code (130), how many calls were in flight at the stop and what stopping now would have
counted for them (``worst_case_usd`` of the first ``run_stopping`` event), and the billed dollars.
Quick: one stop after 3 turns. Full: stops after 3, 6 and 9 turns; the most waste is the figure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import DEFAULT_CONFIG, scratch_dir

ROOT = Path(__file__).resolve().parents[1]
GRACE_S = 60.0


def _journal(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _turns(runs: Path) -> int:
    path = next(runs.glob("[!.]*/events.jsonl"), None)
    return path.read_text(encoding="utf-8").count('"kind": "turn_completed"') if path else 0


def unconfirmed_usd(summary: dict[str, Any], events: list[dict[str, Any]]) -> float:
    """What the run charged for attempts whose usage never arrived."""
    if "unconfirmed_usd" in summary:
        return float(summary["unconfirmed_usd"])
    return sum(
        float(e["cost_usd"]) for e in events if e["kind"] == "attempt_charged" and e["basis"] != "reported"
    )


def one_stop(after_turns: int, tmp: Path) -> dict[str, Any]:
    runs = tmp / f"runs-{after_turns}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "run", str(DEFAULT_CONFIG), "--headless", "--simulate",
         "--runs-dir", str(runs)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while _turns(runs) < after_turns:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the run never reached {after_turns} turns (exit {process.returncode})")
            time.sleep(0.05)  # (a benchmark's poll, not a test's wait)
        signalled = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=GRACE_S + 60)
        stop_s = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    events = _journal(run_dir)
    stopping = [e for e in events if e["kind"] == "run_stopping"]
    if code != 130 or summary["status"] != "interrupted":
        raise RuntimeError(f"the stopped run exited {code}, status {summary['status']}")
    layers = {int(a["layer"]) for a in summary["agents"] if a["turns"] or a["status"] != "pending"}
    return {
        "unconfirmed_usd": unconfirmed_usd(summary, events),
        "stop_s": stop_s,
        "exit_code": code,
        "in_flight_at_stop": len(stopping[0]["in_flight"]) if stopping else 0,
        "worst_case_if_stopped_now_usd": float(stopping[0]["worst_case_usd"]) if stopping else 0.0,
        "cost_usd": float(summary["cost_usd"]),
        "turns": sum(int(a["turns"]) for a in summary["agents"]),
        "mid_layer_1": layers == {1},
    }


def run(quick: bool) -> dict[str, Any]:
    points = [3] if quick else [3, 6, 9]
    with scratch_dir() as tmp:
        stops = {after: one_stop(after, tmp) for after in points}
    figures: dict[str, Any] = {"stop_waste_usd": max(s["unconfirmed_usd"] for s in stops.values())}
    for after, result in stops.items():
        for name, value in result.items():
            figures[f"stop_waste_usd.after_{after}_turns.{name}"] = value
    return figures


if __name__ == "__main__":
    from benchmarks.harness import bench_main

    bench_main(run)
