"""Money across every attempt of a call: what the API billed for attempts that failed (streams broken
anywhere, connections dropped, agents killed, runs stopped) is charged, as a bound, and no cap is
crossed by the retries that follow.

Each example is a real run on the simulator, whose faults break streams at a random frame (before
``message_start``, mid-text, after a search result, in tool input, after ``message_delta``) and
which records what each request billed, a broken one included. The ledger must never hold less
than that, never more than a cap, and the summary must say what the ledger says.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.control import RunStatus
from core.engine.orchestrator import Orchestrator
from core.events import Event, SearchIssued, SearchResultsReceived, TextStreamed
from core.persistence.rundir import RunDir
from core.reports.verify import verify_run
from core.runner import resume_run, start_run
from core.simulator import Simulator, SimulatorSettings
from core.usage import TokenUsage
from tests.core import programs

ENDINGS = {
    RunStatus.COMPLETED,
    RunStatus.BUDGET_EXHAUSTED,
    RunStatus.INTERRUPTED,
    RunStatus.KILLED,
    RunStatus.FAILED,  # retries exhausted: the agent fails with its error, the run says which
}
STREAM_EVENTS = (TextStreamed, SearchIssued, SearchResultsReceived)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "seed": draw(st.integers(0, 10_000)),
        "faults": {
            "stream_error": draw(st.sampled_from([0.0, 0.25, 0.5])),
            "disconnect": draw(st.sampled_from([0.0, 0.2, 0.4])),
            "overloaded": draw(st.sampled_from([0.0, 0.1])),
        },
        "cap_usd": draw(st.sampled_from([None, 0.12, 0.25, 0.5])),
        "search_cap": draw(st.sampled_from([None, 3, 6])),
        "kill_after": draw(st.none() | st.integers(1, 25)),  # stream events of agent "a"
        "stop_after": draw(st.none() | st.integers(3, 60)),  # stream events of any agent
        "attempts": draw(st.integers(2, 6)),
    }


def interrupt_midstream(orchestrator: Orchestrator, scenario: dict[str, Any]) -> None:
    """Kill agent "a" and stop the run now after so many stream events: in the middle of a stream."""
    seen = {"a": 0, "all": 0}
    loop = asyncio.get_running_loop()

    def listen(event: Event) -> None:
        if not isinstance(event, STREAM_EVENTS):
            return
        seen["all"] += 1
        seen["a"] += event.agent_id == "a"
        if seen["a"] == scenario["kill_after"] and event.agent_id == "a":
            loop.call_soon(orchestrator.kill, "a")
        if seen["all"] == scenario["stop_after"]:
            loop.call_soon(partial(orchestrator.stop, now=True))  # cancels the calls in flight

    orchestrator.bus.listen(listen)


async def run(
    tmp_path: Path, scenario: dict[str, Any]
) -> tuple[Any, Orchestrator, list[TokenUsage], dict[str, TokenUsage]]:
    budget: dict[str, Any] = {}
    if scenario["cap_usd"] is not None:
        budget["max_cost_usd"] = scenario["cap_usd"]
    if scenario["search_cap"] is not None:
        budget["max_searches"] = scenario["search_cap"]
    retry = {"max_attempts": scenario["attempts"], "base_delay_s": 0.001, "max_delay_s": 0.005}
    data = programs.program(
        [programs.agent("a"), programs.agent("b")],
        [programs.agent("c")],
        max_turns=2,
        execution={"retry": retry, "budget": budget},
    )
    sim_settings = SimulatorSettings(
        seed=scenario["seed"], faults=scenario["faults"], stream_cut="anywhere", retry_after_s=0.001
    )
    async with Simulator(sim_settings) as sim:
        orchestrator = await start_run(
            programs.write(tmp_path, data), tmp_path / "runs", simulate=True, base_url=sim.base_url
        )
        interrupt_midstream(orchestrator, scenario)
        outcome = await orchestrator.run()
    # Stopped: every stream it served has ended and was logged with what it billed.
    assert not sim.stats.active_streams
    billed = [TokenUsage.from_api(r.usage) for r in sim.stats.recent if r.usage is not None]
    by_request = {r.request_id: TokenUsage.from_api(r.usage) for r in sim.stats.recent if r.usage is not None}
    return outcome, orchestrator, billed, by_request


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_every_attempt_is_charged_at_least_what_it_was_billed_and_no_cap_is_crossed(
    tmp_path_factory: pytest.TempPathFactory, scenario: dict[str, Any]
) -> None:
    tmp_path = tmp_path_factory.mktemp("charges")
    outcome, orchestrator, billed, by_request = asyncio.run(run(tmp_path, scenario))
    ledger = orchestrator.ledger
    model = orchestrator.agents[0].model
    usage, spent = ledger.total_usage()
    owed = sum(ledger.prices.cost(model, u) for u in billed)

    # (a) nothing billed goes unaccounted: dollars, searches and tokens are bounds of the bill
    assert spent >= owed - 1e-9, (spent, owed)
    assert usage.web_search_requests >= sum(u.web_search_requests for u in billed)
    assert usage.output_tokens >= sum(u.output_tokens for u in billed)
    assert usage.total_input_tokens >= sum(u.total_input_tokens for u in billed)
    # (b) and no cap is crossed by it
    if scenario["cap_usd"] is not None:
        assert spent <= scenario["cap_usd"] + 1e-9
    if scenario["search_cap"] is not None:
        assert usage.web_search_requests <= scenario["search_cap"]
    assert not ledger.reserved_usd, "every reservation was settled, charged or released"
    # (c) a clear ending, and the summary says what the ledger says
    assert outcome.status in ENDINGS, outcome
    if outcome.status is not RunStatus.COMPLETED:
        assert outcome.message
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["cost_usd"] == pytest.approx(spent, abs=1e-5)
    assert summary["searches"] == usage.web_search_requests
    for agent in summary["agents"]:
        agent_usage, agent_cost = ledger.agent_usage(agent["id"])
        assert agent["cost_usd"] == pytest.approx(agent_cost, abs=1e-6), agent["id"]
        assert agent["searches"] == agent_usage.web_search_requests, agent["id"]
    # (d) billed is exactly what the API reported, unconfirmed a bound of what it billed besides
    journal = [json.loads(line) for line in (outcome.run_dir / "events.jsonl").read_text().splitlines()]
    check_the_split(journal, summary, by_request, lambda u: ledger.prices.cost(model, u))
    # the summary, the checkpoints and the journal agree (what `verify RUN` checks), turns included:
    # a turn an agent was in when it failed or stopped is not a turn it completed
    assert verify_run(RunDir(outcome.run_dir)).problems == []


def check_the_split(
    journal: list[dict[str, Any]],
    summary: dict[str, Any],
    served: dict[str, TokenUsage],
    cost: Any,
) -> None:
    """``billed_usd`` and ``billed_searches`` are the usage the server reported (``message_delta``) for
    the requests the journal says it reported, to the cent; every other charge is unconfirmed and at
    least what the server billed for that request; ``cost_usd`` = billed + unconfirmed."""
    charges = [e for e in journal if e["kind"] in ("turn_completed", "attempt_charged")]
    reported = [e for e in charges if e["kind"] == "turn_completed" or e["basis"] == "reported"]
    bounds = [e for e in charges if e not in reported]
    for event in reported:
        assert TokenUsage.from_dict(event["usage"]) == served[event["request_id"]], event
    billed = sum(cost(served[e["request_id"]]) for e in reported)
    assert round(summary["billed_usd"], 2) == round(billed, 2)
    assert summary["billed_usd"] == pytest.approx(billed, abs=1e-5)
    assert summary["billed_searches"] == sum(served[e["request_id"]].web_search_requests for e in reported)
    for event in bounds:
        if event.get("request_id") in served:
            assert event["cost_usd"] >= cost(served[event["request_id"]]) - 1e-9, event
    assert summary["unconfirmed_usd"] == pytest.approx(sum(e["cost_usd"] for e in bounds), abs=1e-5)
    assert summary["unconfirmed_attempts"] == len(bounds)
    assert summary["unconfirmed_searches"] == sum(e["usage"].get("web_search_requests", 0) for e in bounds)
    assert summary["cost_usd"] == pytest.approx(summary["billed_usd"] + summary["unconfirmed_usd"], abs=1e-9)
    assert summary["searches"] == summary["billed_searches"] + summary["unconfirmed_searches"]


@pytest.mark.parametrize("stop_after", [1, 4])
async def test_calls_cut_off_by_a_stop_stay_charged_when_the_run_is_resumed(
    tmp_path: Path, stop_after: int
) -> None:
    data = programs.program(
        [programs.agent("a"), programs.agent("b")],
        max_turns=2,
        simulator={"tokens_per_second": 4000},  # streams long enough to be cut off
    )
    config = programs.write(tmp_path, data)
    stopped = await start_run(config, tmp_path / "runs", simulate=True)
    interrupt_midstream(stopped, {"kill_after": None, "stop_after": stop_after})
    outcome = await stopped.run()
    assert outcome.status is RunStatus.INTERRUPTED
    journal = [json.loads(line) for line in (outcome.run_dir / "events.jsonl").read_text().splitlines()]
    cut = [e for e in journal if e["kind"] == "attempt_charged"]
    assert cut and all(e["basis"] == "worst_case" and e["outcome"] == "unknown" for e in cut)
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["cost_usd"] == pytest.approx(stopped.ledger.spent_usd, abs=1e-5)

    resumed = await resume_run(tmp_path / "runs", outcome.run_dir.name)
    assert resumed.ledger.spent_usd == pytest.approx(stopped.ledger.spent_usd)
    assert resumed.ledger.total_usage()[0] == stopped.ledger.total_usage()[0]
    final = await resumed.run()
    assert final.status is RunStatus.COMPLETED
    after = json.loads((outcome.run_dir / "summary.json").read_text())
    assert after["cost_usd"] == pytest.approx(resumed.ledger.spent_usd, abs=1e-5)
    assert after["cost_usd"] > summary["cost_usd"]


async def test_a_retry_that_no_longer_fits_stops_the_agent_on_its_cap_with_its_report(tmp_path: Path) -> None:
    """Turn 2's first attempt is cut off before ``message_start``: it may have run every search it
    was allowed, so it is charged them all, and its retry no longer fits the agent's search cap."""
    data = programs.program(
        [programs.agent("a")],
        max_turns=3,
        defaults={"follow_up_prompts": ["Dig deeper. [sim:fault=disconnect:1]"]},
        simulator={"stream_cut": "start"},
        execution={"budget": {"per_agent_max_searches": 6}},
    )
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    outcome = await orchestrator.run()

    assert outcome.status is RunStatus.BUDGET_EXHAUSTED and outcome.exit_code == 3
    assert outcome.message and "per-agent search cap stopped a" in outcome.message
    journal = [json.loads(line) for line in (outcome.run_dir / "events.jsonl").read_text().splitlines()]
    [charged] = [e for e in journal if e["kind"] == "attempt_charged"]
    assert (charged["basis"], charged["outcome"], charged["turn"]) == ("worst_case", "unknown", 2)
    [stop] = [e for e in journal if e["kind"] == "budget_cap_reached"]
    assert stop["cap"] == "agent_searches"
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    [agent] = summary["agents"]
    assert agent["status"] == "budget_exhausted" and agent["searches"] == 6  # at the cap, not over
    assert agent["turns"] == 2  # turn 1, then the report it wrote when the cap stopped it
    assert agent["cost_usd"] == pytest.approx(orchestrator.ledger.spent_usd, abs=1e-6)
    report = (outcome.run_dir / agent["report"]).read_text()
    assert "Partial report" not in report and len(report) > 200


async def test_a_resume_whose_reports_directory_was_removed_writes_it_again(tmp_path: Path) -> None:
    """A run directory tidied by hand (``reports/`` gone) resumes: it is made again before any
    report is written, instead of failing after the turns were paid for."""
    data = programs.program([programs.agent("a"), programs.agent("b")], max_turns=2)
    config = programs.write(tmp_path, data)
    stopped = await start_run(config, tmp_path / "runs", simulate=True)
    interrupt_midstream(stopped, {"kill_after": None, "stop_after": 1})
    outcome = await stopped.run()
    assert outcome.status is RunStatus.INTERRUPTED
    shutil.rmtree(outcome.run_dir / "reports", ignore_errors=True)
    final = await (await resume_run(tmp_path / "runs", outcome.run_dir.name)).run()
    assert final.status is RunStatus.COMPLETED
    assert sorted(p.name for p in (outcome.run_dir / "reports").iterdir()) == ["a.md", "b.md"]
