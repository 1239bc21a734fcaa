"""Batch layers in real runs: the shipped program with its layer 1 in ``mode: batch``.

The Messages answers are the simulator's; the Batches lifecycle is a small fake
(:mod:`tests.core.engine.batch_fakes`) so that a test decides when a batch ends and what it returns;
``test_batch_simulated.py`` runs on the simulator's own Batches API.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.api.sdk import AnthropicTransport
from core.budget.pricing import PriceTable
from core.cli import main
from core.config.loader import load_config
from core.engine.batch_round import PollSchedule
from core.prices import batch_priced
from core.runner import resume_run, start_run
from core.simulator import Simulator, SimulatorSettings
from core.usage import TokenUsage
from tests.core import programs
from tests.core.engine.batch_fakes import FakeBatches, simulator_answers

FAST_POLLS = PollSchedule(first_s=0.01, factor=1.0, max_s=0.01, gather_s=0.05)


def with_batch_layer(path: Path, layer: int = 0) -> Path:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["layers"][layer]["mode"] = "batch"
    return programs.write(path.parent / "batch", data)


def journal(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


async def run_batched(sim: Simulator, config: Path, runs: Path) -> tuple[Path, FakeBatches]:
    orchestrator = await start_run(config, runs, simulate=True, base_url=sim.base_url)
    assert isinstance(orchestrator.transport, AnthropicTransport)
    fake = FakeBatches(simulator_answers(orchestrator.transport))
    orchestrator.batches, orchestrator.poll = fake, FAST_POLLS
    return (await orchestrator.run()).run_dir, fake


async def test_the_shipped_program_with_a_batch_layer_completes_at_batch_prices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = with_batch_layer(programs.default_program_fast(tmp_path / "program", pause_turn_probability=0.3))
    async with Simulator(SimulatorSettings(seed=7, pause_turn_probability=0.3)) as sim:
        run_dir, fake = await run_batched(sim, config, tmp_path / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed", summary.get("reason")
    assert main(["verify", str(run_dir)]) == 0, capsys.readouterr().out

    events = journal(run_dir)
    layer_one = {a["id"] for a in summary["agents"] if a["layer"] == 1}
    assert all(count == 1 for count in Counter(fake.created).values())  # never submitted twice
    submitted = [e for e in events if e["kind"] == "batch_submitted"]
    assert sum(e["requests"] for e in submitted) == len(fake.created)
    assert len(submitted) < len(fake.created)  # rounds: several agents' requests in one batch
    assert {e["batch_id"] for e in events if e["kind"] == "batch_ended"} == {e["batch_id"] for e in submitted}
    turns = [e for e in events if e["kind"] == "turn_completed"]
    batched = [e for e in turns if e["agent_id"] in layer_one]
    assert len(batched) == len(fake.created)  # one result, one turn
    assert any(e["paused_continuation"] for e in batched)  # pause_turn results continued next round
    assert {e["agent_id"] for e in events if e["kind"] == "agent_batched"} == layer_one

    # Every dollar of layer 1 is its results' usage at batch prices (searches at the normal price).
    prices = PriceTable.from_config(load_config(config).pricing)
    expected: dict[str, float] = {}
    for e in batched:
        usage = TokenUsage.from_dict(e["usage"])
        cost = prices.cost(batch_priced(e["model"]), usage)
        expected[e["agent_id"]] = expected.get(e["agent_id"], 0.0) + cost
    for agent in summary["agents"]:
        if agent["layer"] == 1:
            assert agent["cost_usd"] == pytest.approx(expected[agent["id"]], abs=1e-6)
            assert agent["unconfirmed_usd"] == 0


@pytest.mark.parametrize("now", [False, True])
async def test_a_stop_during_a_batch_then_a_resume_pays_each_request_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], now: bool
) -> None:
    """A clean stop leaves the batch running and the resume collects its results; a stop now
    cancels it and the resume sends the canceled requests again. Never a request twice, never a
    dollar the results' usage does not account for."""
    data = programs.program(
        [programs.agent("north"), programs.agent("south"), programs.agent("east")],
        [programs.agent("synthesis")],
        max_turns=2,
    )
    data["layers"][0]["mode"] = "batch"
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    async with Simulator(SimulatorSettings(seed=3)) as sim:
        orchestrator = await start_run(config, runs, simulate=True, base_url=sim.base_url)
        assert isinstance(orchestrator.transport, AnthropicTransport)
        current = [orchestrator.transport]

        async def answer(custom_id: str, params: Any) -> Any:
            return await simulator_answers(current[-1])(custom_id, params)

        fake = FakeBatches(answer)
        orchestrator.batches, orchestrator.poll = fake, FAST_POLLS
        stopped = False

        def stop_at_second_round(event: Any) -> None:
            nonlocal stopped
            if event.kind == "batch_submitted" and not stopped and len(fake.batches) == 2:
                stopped = True
                orchestrator.stop(now=now)

        orchestrator.bus.listen(stop_at_second_round)
        first = await orchestrator.run()
        assert first.status.value == "interrupted"
        stopped_summary = json.loads((first.run_dir / "summary.json").read_text())
        assert stopped_summary["unconfirmed_usd"] == 0  # the batch's requests: collected by the resume
        assert fake.cancelled == (["msgbatch_0002"] if now else [])

        resumed = await resume_run(runs, first.run_dir.name, simulate=True)
        assert isinstance(resumed.transport, AnthropicTransport)
        current.append(resumed.transport)
        resumed.batches, resumed.poll = fake, FAST_POLLS
        outcome = await resumed.run()
    assert outcome.status.value == "completed", outcome.message
    assert main(["verify", str(outcome.run_dir)]) == 0, capsys.readouterr().out
    assert all(count == 1 for count in Counter(fake.created).values()), fake.created
    if not now:
        assert not any(c.endswith("-a1") for c in fake.created)  # collected, not sent again

    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    events = journal(outcome.run_dir)
    prices = PriceTable.from_config(load_config(config).pricing)
    paid = 0.0
    for e in events:
        if e["kind"] in ("turn_completed", "attempt_charged"):
            model = batch_priced(e["model"]) if e["layer"] == 1 else e["model"]
            paid += prices.cost(model, TokenUsage.from_dict(e["usage"]))
    assert summary["cost_usd"] == pytest.approx(paid, abs=1e-6)
    assert summary["unconfirmed_usd"] == 0
    succeeded = sum(1 for b in fake.batches.values() for r in b.results.values() if r.type == "succeeded")
    assert len([e for e in events if e["kind"] == "turn_completed" and e["layer"] == 1]) == succeeded
