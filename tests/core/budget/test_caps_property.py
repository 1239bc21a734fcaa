"""The product's first promise, on generated programs: no cap is crossed, in any run, across every
attempt (interrupts and resumes), and the cost reported equals a recomputation from the API's usage
(plus the bounds charged for the calls an interrupt cut off, as their events record them): billed,
the usage the API reported, and unconfirmed, those bounds, apart.

Programs are drawn the way users write them: system prompts from empty to ~500k characters in
English or code (150k in Japanese, whose YAML escapes take 6 bytes a character, within the
loader's 1 MiB file limit), caching off or on with either TTL, ``max_uses`` absent, null, small or
large, run and per-agent caps in dollars and searches, 1 to 60 agents, checkpoints on or off,
turns of 0 to 30 searches, interrupts between turns followed by resumes, a first layer streamed or
in batch mode (its tokens at half price, its searches not). Each example is a real run on the
simulator, which bills the text by its script (a batch layer's Batches lifecycle is the engine
tests' fake, :mod:`tests.core.engine.batch_fakes`, answering with the simulator's messages).

``HYPOTHESIS_PROFILE=slow`` runs a deeper search (more and larger examples).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.api.sdk import AnthropicTransport
from core.config.loader import ConfigError
from core.control import RunStatus
from core.engine.batch_round import PollSchedule
from core.events import Event, TurnCompleted
from core.runner import resume_run, start_run
from tests.core import programs
from tests.core.engine.batch_fakes import FakeBatches, simulator_answers

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "slow"

# Hand-written $/MTok (input, output, 5m write, 1h write, read): independent of core.budget.pricing.
RATES = {
    "claude-sonnet-5": (2.0, 10.0, 2.5, 4.0, 0.2),
    "claude-haiku-4-5": (1.0, 5.0, 1.25, 2.0, 0.1),
    "claude-opus-5-5": (4.0, 20.0, 5.0, 8.0, 0.2),
}

SCRIPTS = {
    "english": "Sodium-ion cells are cheaper than lithium iron phosphate at grid scale, analysts say. ",
    "japanese": "ナトリウムイオン電池は系統用蓄電で価格競争力を高めており、2030年までに普及が進む見通しだ。",
    "code": 'def f(x):\n    return {"k": [x, 0x1F, "https://example.org/a?b=1&c=2"]}  # 12345\n',
}


def text_of(script: str, chars: int) -> str:
    unit = SCRIPTS[script]
    return (unit * (chars // len(unit) + 1))[:chars]


def independent_cost(model: str, usage: dict[str, int], *, batch: bool = False) -> float:
    """Dollars of one call's usage; a batch request's tokens at half price, its searches not."""
    i, o, w5, w1, r = RATES[model]
    tokens = (
        usage.get("input_tokens", 0) * i
        + usage.get("output_tokens", 0) * o
        + usage.get("cache_write_5m_tokens", 0) * w5
        + usage.get("cache_write_1h_tokens", 0) * w1
        + usage.get("cache_read_input_tokens", 0) * r
    ) / 1e6
    return tokens * (0.5 if batch else 1.0) + usage.get("web_search_requests", 0) * 10 / 1000


@st.composite
def user_programs(draw: st.DrawFn) -> dict[str, Any]:
    prompt_chars = draw(st.sampled_from([0, 300, 5_000, 60_000, 500_000]), label="system prompt chars")
    most_agents = 60 if prompt_chars <= 5_000 else (8 if prompt_chars <= 60_000 else 2)
    n_agents = draw(st.integers(1, most_agents), label="agents")
    script = draw(st.sampled_from(sorted(SCRIPTS)), label="script")
    if script == "japanese":  # written as \uXXXX escapes: the file stays under the loader's 1 MiB
        prompt_chars = min(prompt_chars, 150_000)
    brief_script = draw(st.sampled_from(sorted(SCRIPTS)), label="brief script")
    layers: list[list[dict[str, Any]]] = [[]]
    two_layers = n_agents > 1 and draw(st.booleans(), label="two layers")
    for index in range(n_agents):
        if two_layers and index == n_agents - 1:
            layers.append([])
        brief = f"Angle {index}: " + text_of(brief_script, draw(st.integers(20, 400)))
        layers[-1].append(programs.agent(f"a{index}", brief=brief))
    caching = draw(st.sampled_from(["off", "5m", "1h"]), label="caching")
    max_uses = draw(st.sampled_from(["absent", None, 1, 3, 20]), label="max_uses")
    web_search: dict[str, Any] = {} if max_uses == "absent" else {"max_uses": max_uses}
    cheap = st.floats(0.005, 0.05) | st.floats(0.05, 2.0)
    budget = {
        "max_cost_usd": draw(st.none() | cheap, label="run $ cap"),
        "max_searches": draw(st.none() | st.integers(1, 120), label="run search cap"),
        "per_agent_max_cost_usd": draw(st.none() | cheap, label="agent $ cap"),
        "per_agent_max_searches": draw(st.none() | st.integers(1, 12), label="agent search cap"),
    }
    lo = draw(st.integers(0, 30), label="fewest searches per turn")
    data = programs.program(
        *layers,
        max_turns=draw(st.integers(1, 4), label="max_turns"),
        defaults={
            "model": draw(st.sampled_from(sorted(RATES)), label="model"),
            "max_tokens": draw(st.sampled_from([256, 1024, 4096])),
            "system_prompt": text_of(script, prompt_chars),
            "web_search": web_search,
            "caching": {"enabled": caching != "off", "ttl": "1h" if caching == "1h" else "5m"},
        },
        execution={
            "max_concurrent_agents": draw(st.sampled_from([1, 8, 60]), label="concurrency"),
            "budget": {k: v for k, v in budget.items() if v is not None},
            "checkpoints": {"enabled": draw(st.sampled_from([True, True, True, False]), label="checkpoints")},
        },
        simulator={
            "seed": draw(st.integers(0, 2**16)),
            "searches_per_turn": [lo, draw(st.integers(lo, 30), label="most searches per turn")],
            "pause_turn_probability": draw(st.sampled_from([0.0, 0.2])),
        },
    )
    if draw(st.booleans(), label="first layer in batch mode"):
        data["layers"][0]["mode"] = "batch"
    saved = data["execution_settings"]["checkpoints"]["enabled"]  # without checkpoints nothing resumes
    data["_interrupts"] = draw(st.lists(st.integers(1, 12), max_size=2 if saved else 0), label="interrupts")
    return data


def stop_after(orchestrator: Any, turns: int | None) -> Callable[[Event], None]:
    """A listener that stops the run once ``turns`` API calls have completed (between turns)."""
    seen = 0

    def listener(event: Event) -> None:
        nonlocal seen
        if isinstance(event, TurnCompleted) and turns is not None:
            seen += 1
            if seen == turns:
                orchestrator.stop()

    return listener


async def run_attempts(tmp_path: Path, data: dict[str, Any]) -> tuple[Path, list[RunStatus]]:
    """Start the program, stop it after the drawn numbers of completed turns, resume it each time."""
    interrupts = list(data.pop("_interrupts"))
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    orchestrator = await start_run(config, runs, simulate=True)
    answering: list[AnthropicTransport] = []  # the current attempt's client answers a batch's requests

    async def answer(custom_id: str, params: Any) -> Any:
        return await simulator_answers(answering[-1])(custom_id, params)

    batches = FakeBatches(answer)  # outlives each attempt, as the API's batches do
    statuses: list[RunStatus] = []
    while True:
        assert isinstance(orchestrator.transport, AnthropicTransport)
        answering.append(orchestrator.transport)
        orchestrator.batches, orchestrator.poll = batches, PollSchedule(0.01, 1.0, 0.01, 0.05)
        orchestrator.bus.listen(stop_after(orchestrator, interrupts.pop(0) if interrupts else None))
        outcome = await orchestrator.run()
        statuses.append(outcome.status)
        if outcome.status is not RunStatus.INTERRUPTED:
            return outcome.run_dir, statuses
        orchestrator = await resume_run(runs, outcome.run_dir.name)


def check(run_dir: Path, data: dict[str, Any]) -> None:
    budget = data["execution_settings"]["budget"]
    summary = json.loads((run_dir / "summary.json").read_text())
    journal = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    # what was billed: the completed turns, and the failed attempts charged (calls a stop cut off)
    turns = [e for e in journal if e["kind"] in ("turn_completed", "attempt_charged")]
    model = data["defaults"]["model"]
    batched = {a["id"] for layer in data["layers"] if layer.get("mode") == "batch" for a in layer["agents"]}

    def priced(model: str, usage: dict[str, int], agent: str) -> float:
        return independent_cost(model, usage, batch=agent in batched)

    recomputed = sum(priced(model, e["usage"], e["agent_id"]) for e in turns)
    assert round(summary["cost_usd"], 2) == round(recomputed, 2)  # to the cent
    assert summary["cost_usd"] == pytest.approx(recomputed, abs=1e-5)  # summary.json rounds its figures
    searches = sum(e["usage"].get("web_search_requests", 0) for e in turns)
    assert summary["searches"] == searches
    # billed: the usage the simulator reported (completed turns, failed attempts whose usage arrived);
    # unconfirmed: the bounds charged for the rest; the caps count both
    reported = [e for e in turns if e["kind"] == "turn_completed" or e["basis"] == "reported"]
    billed = sum(priced(model, e["usage"], e["agent_id"]) for e in reported)
    assert round(summary["billed_usd"], 2) == round(billed, 2)
    assert summary["billed_usd"] == pytest.approx(billed, abs=1e-5)
    assert summary["unconfirmed_usd"] == pytest.approx(recomputed - billed, abs=1e-5)
    assert summary["unconfirmed_attempts"] == len(turns) - len(reported)
    assert summary["billed_searches"] == sum(e["usage"].get("web_search_requests", 0) for e in reported)
    assert summary["cost_usd"] == pytest.approx(summary["billed_usd"] + summary["unconfirmed_usd"], abs=1e-9)

    if "max_cost_usd" in budget:
        assert recomputed <= budget["max_cost_usd"] + 1e-9
        assert summary["cost_usd"] <= budget["max_cost_usd"] + 1e-6
    if "max_searches" in budget:
        assert searches <= budget["max_searches"]
    for agent in summary["agents"]:
        mine = [e for e in turns if e["agent_id"] == agent["id"]]
        cost = sum(priced(model, e["usage"], agent["id"]) for e in mine)
        found = sum(e["usage"].get("web_search_requests", 0) for e in mine)
        if "per_agent_max_cost_usd" in budget:
            assert cost <= budget["per_agent_max_cost_usd"] + 1e-9, agent["id"]
        if "per_agent_max_searches" in budget:
            assert found <= budget["per_agent_max_searches"], agent["id"]
        if agent["turns"] > 0 and agent["status"] in ("completed", "budget_exhausted"):
            report = (run_dir / agent["report"]).read_text()
            assert "Partial report" not in report, f"{agent['id']} started and must have its report"


@settings(
    max_examples=60 if DEEP else 10,
    deadline=None,
    derandomize=not DEEP,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
@given(data=user_programs())
def test_no_cap_is_crossed_across_attempts_and_the_cost_is_the_usage_recomputed(
    tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]
) -> None:
    tmp_path = tmp_path_factory.mktemp("program")
    capped = bool(data["execution_settings"]["budget"])
    if capped and not data["execution_settings"]["checkpoints"]["enabled"]:
        data.pop("_interrupts")
        with pytest.raises(ConfigError, match="cannot be used with budget caps"):
            asyncio.run(start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True))
        return
    expected = yaml.safe_load(yaml.safe_dump({k: v for k, v in data.items() if k != "_interrupts"}))
    run_dir, statuses = asyncio.run(run_attempts(tmp_path, data))
    assert statuses[-1] in (RunStatus.COMPLETED, RunStatus.BUDGET_EXHAUSTED), statuses
    check(run_dir, expected)
