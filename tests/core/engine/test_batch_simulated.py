"""Batch layers on the simulator's own Batches API, as a user runs them: the command line with
``--simulate``, and a ``kill -9`` while a batch is in progress, then ``resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import pytest
import yaml

from core.budget.pricing import PriceTable
from core.cli import main
from core.config.loader import load_config
from core.prices import batch_priced
from core.usage import TokenUsage
from tests.core import programs
from tests.core.engine.conftest import simulator_process
from tests.waits import wait_until

KEY = "sk-ant-batches"


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line]


def test_the_shipped_program_with_layer_1_in_batch_mode_completes_on_the_simulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(programs.DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["layers"][0]["mode"] = "batch"
    # Quick answers; a batch request's server loop as short as a streamed one's, so its turns pause too.
    data["simulator"] = {
        **data["simulator"], "latency_ms": 0, "tokens_per_second": 0, "pause_turn_probability": 0.3,
        "batch_processing_s": 1.0, "batch_server_loop_limit": 3,
    }  # fmt: skip
    config = programs.write(tmp_path, data, "research_config.yaml")
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]
    assert main(["verify", str(run_dir)]) == 0, capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and all(a["status"] == "completed" for a in summary["agents"])
    events = journal(run_dir)
    layer_one = [e for e in events if e["kind"] == "turn_completed" and e["layer"] == 1]
    assert any(e["paused_continuation"] for e in layer_one)  # pause_turn results continued next round
    submitted = [e for e in events if e["kind"] == "batch_submitted"]
    assert sum(e["requests"] for e in submitted) == len(layer_one)
    for agent in (a for a in summary["agents"] if a["layer"] == 1):
        report = (run_dir / agent["report"]).read_text()
        assert "## Sources" in report and "https://" in report, agent["id"]


def test_a_kill_9_during_a_batch_then_resume_sends_every_request_once_and_bills_its_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = programs.program(
        [programs.agent(name) for name in ("north", "south", "east", "west")],
        [programs.agent("synthesis")],
        max_turns=3,
    )
    data["layers"][0]["mode"] = "batch"
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    options = ("--seed", "3", "--pause-turn-probability", "0.3", "--server-loop-limit", "2",
               "--batch-server-loop-limit", "2", "--batch-processing-s", "3")  # fmt: skip
    with simulator_process(*options) as url:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url}
        command = [
            sys.executable,
            "-m",
            "core.cli",
            "run",
            str(config),
            "--headless",
            "--runs-dir",
            str(runs),
        ]
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

        def second_batch_in_progress() -> bool:
            run_dirs = [p for p in runs.iterdir() if not p.name.startswith(".")] if runs.exists() else []
            if not run_dirs or not (run_dirs[0] / "events.jsonl").exists():
                return False
            kinds = Counter(e["kind"] for e in journal(run_dirs[0]))
            return kinds["batch_submitted"] >= 2 and kinds["batch_ended"] < kinds["batch_submitted"]

        wait_until(second_batch_in_progress, "a second round's batch in progress", within=120)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        [run_dir] = [p for p in runs.iterdir() if not p.name.startswith(".")]
        resumed = subprocess.run(
            [sys.executable, "-m", "core.cli", "resume", run_dir.name, "--headless", "--runs-dir", str(runs)],
            cwd=tmp_path, env=env, capture_output=True, timeout=300,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]

        client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)
        batches = list(client.messages.batches.list(limit=100))
        results = [line for batch in batches for line in client.messages.batches.results(batch.id)]
        client.close()
    assert main(["verify", str(run_dir)]) == 0, capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed", summary.get("reason")

    # The simulator saw every custom_id once: those the journal's rounds name, in both processes.
    seen = Counter(line.custom_id for line in results)
    assert seen and all(count == 1 for count in seen.values()), seen
    named = [c for e in journal(run_dir) if e["kind"] == "batch_submitted" for c in e["custom_ids"]]
    assert sorted(named) == sorted(seen)
    # Layer 1's dollars are its results' usage at batch prices: nothing charged twice, no bound left.
    prices = PriceTable.from_config(load_config(config).pricing)
    model = batch_priced(summary["agents"][0].get("model") or "claude-sonnet-5")
    billed = sum(
        prices.cost(model, TokenUsage.from_api(line.result.message.usage))
        for line in results
        if line.result.type == "succeeded"
    )
    layer_one = [a for a in summary["agents"] if a["layer"] == 1]
    assert sum(a["cost_usd"] for a in layer_one) == pytest.approx(billed, abs=1e-5)
    assert all(a["unconfirmed_usd"] == 0 for a in layer_one)
