"""The run model folds core events into the rows, header and incidents the app shows."""

from __future__ import annotations

import json

import pytest

from core import events as ev
from core.control import AgentStatus
from core.usage import TokenUsage
from core.view import RunView
from tests.sample_events import RUN_ID, sodium_script


def folded() -> RunView:
    model = RunView()
    for event in sodium_script():
        model.apply(event)
    return model


def test_run_started_lists_every_agent_as_pending_with_its_layer() -> None:
    model = RunView()
    change = model.apply(
        ev.RunStarted(
            run_id=RUN_ID,
            program="p",
            run_dir="d",
            agents=(("a", 1, "A"), ("b", 2, "B")),
            simulated=True,
            at=100.0,
        )
    )
    assert change.all_rows and change.run is not None
    assert model.run.simulated and model.run.layers == 2 and model.run.started_at == 100.0
    assert [(r.agent_id, r.layer, r.status) for r in model.agents.values()] == [
        ("a", 1, AgentStatus.PENDING),
        ("b", 2, AgentStatus.PENDING),
    ]


def test_turns_add_cost_and_searches_and_the_finish_event_is_authoritative() -> None:
    model = folded()
    market = model.agents["market"]
    assert (market.status, market.turn, market.searches, market.cost_usd) == (
        AgentStatus.RUNNING,
        4,
        12,
        1.84,
    )
    policy = model.agents["policy"]
    assert policy.status == AgentStatus.COMPLETED and policy.report_path and policy.turn == 6


def test_retries_are_counted_per_agent_and_logged_as_incidents() -> None:
    model = RunView()
    change = model.apply(
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="x",
            layer=1,
            error_kind="rate_limit",
            status_code=429,
            attempt=2,
            wait_s=3.0,
            request_id="req_1",
        )
    )
    assert model.agents["x"].retries == 1
    assert change.incident is not None
    assert (
        change.incident.status_code,
        change.incident.attempt,
        change.incident.wait_s,
        change.incident.request_id,
        change.incident.fatal,
    ) == (429, 2, 3.0, "req_1", False)


def test_pause_lifecycle_and_kill_change_the_status() -> None:
    model = RunView()
    model.apply(ev.AgentStarted(run_id=RUN_ID, agent_id="x", layer=1))
    statuses = []
    for event in (ev.AgentPausing, ev.AgentPaused, ev.AgentResumed, ev.AgentKilled):
        model.apply(event(run_id=RUN_ID, agent_id="x"))
        statuses.append(model.agents["x"].status)
    assert statuses == [AgentStatus.PAUSING, AgentStatus.PAUSED, AgentStatus.RUNNING, AgentStatus.KILLED]


def test_failures_are_fatal_incidents_and_text_changes_no_row() -> None:
    model = RunView()
    failed = model.apply(ev.AgentFailed(run_id=RUN_ID, agent_id="x", error="boom", status_code=500))
    assert model.agents["x"].status == AgentStatus.FAILED
    assert failed.incident is not None and failed.incident.fatal
    text = model.apply(ev.TextStreamed(run_id=RUN_ID, agent_id="x", text="hi"))
    assert text.rows == () and text.run is None


def test_run_finished_freezes_the_header() -> None:
    model = folded()
    model.apply(ev.RunFinished(run_id=RUN_ID, status="completed", cost_usd=7.0, at=5000.0))
    assert model.run.status == "completed" and model.run.finished_at == 5000.0 and model.run.cost_usd == 7.0


def test_turn_usage_searches_accumulate() -> None:
    model = RunView()
    for _ in range(3):
        model.apply(
            ev.TurnCompleted(
                run_id=RUN_ID,
                agent_id="x",
                turn=1,
                stop_reason="end_turn",
                cost_usd=0.5,
                usage=TokenUsage(web_search_requests=2),
            )
        )
    assert model.agents["x"].searches == 6 and model.agents["x"].cost_usd == 1.5


def test_a_charged_failed_attempt_adds_its_dollars_and_searches_but_completes_no_turn() -> None:
    model = RunView()
    model.apply(
        ev.TurnCompleted(
            run_id=RUN_ID, agent_id="x", turn=1, stop_reason="end_turn", cost_usd=0.5, usage=TokenUsage()
        )
    )
    charged = ev.AttemptCharged(
        run_id=RUN_ID,
        agent_id="x",
        turn=2,
        usage=TokenUsage(output_tokens=90, web_search_requests=1),
        cost_usd=0.25,
        basis="received",
        outcome="stopped",
    )
    change = model.apply(ev.from_json(json.loads(json.dumps(charged.to_json()))))  # from the journal
    row = model.agents["x"]
    assert (row.turn, row.searches, row.cost_usd) == (1, 1, 0.75)
    assert model.spent_usd == 0.75
    assert change.incident is not None and change.incident.kind == "charged" and not change.incident.fatal
    assert "$0.2500 and 1 search(es) charged" in change.incident.message
    assert "streamed" in change.incident.message


def test_a_resumed_run_starts_from_its_seeds_and_adds_only_what_is_new() -> None:
    view = RunView()
    view.apply(
        ev.RunStarted(
            run_id=RUN_ID,
            program="p",
            run_dir="d",
            agents=(("a", 1, "A"), ("b", 1, "B"), ("c", 2, "C")),
            seeds={
                "a": ev.AgentSeed(
                    status="completed", turns=4, searches=6, cost_usd=0.4, report_path="r/a.md"
                ),
                "b": ev.AgentSeed(status="pending", turns=1, searches=2, cost_usd=0.1),
            },
            resumed=True,
            started_at=50.0,
            at=100.0,
        )
    )
    assert (view.agents["a"].status, view.agents["a"].turn, view.agents["a"].cost_usd) == (
        AgentStatus.COMPLETED,
        4,
        0.4,
    )
    assert view.run.started_at == 50.0 and view.run.resumed
    view.apply(
        ev.TurnCompleted(
            run_id=RUN_ID,
            agent_id="b",
            layer=1,
            turn=2,
            stop_reason="end_turn",
            usage=TokenUsage(web_search_requests=3),
            cost_usd=0.2,
        )
    )
    b = view.agents["b"]
    assert (b.turn, b.searches, b.cost_usd) == (2, 5, pytest.approx(0.3))
    assert view.spent_usd == pytest.approx(0.7) and view.searches == 11


def test_a_pending_agent_paused_then_resumed_is_pending_again_and_a_stopped_one_interrupted() -> None:
    view = RunView()
    view.apply(ev.RunStarted(run_id=RUN_ID, program="p", run_dir="d", agents=(("a", 1, "A"), ("b", 1, "B"))))
    view.apply(ev.AgentPaused(run_id=RUN_ID, agent_id="a", layer=1))
    assert view.status_of("a") is AgentStatus.PAUSED
    view.apply(ev.AgentResumed(run_id=RUN_ID, agent_id="a", layer=1))
    assert view.status_of("a") is AgentStatus.PENDING
    view.apply(ev.AgentStarted(run_id=RUN_ID, agent_id="b", layer=1))
    view.apply(ev.AgentBudgetWaitStarted(run_id=RUN_ID, agent_id="b", layer=1, cap="usd", message="waits"))
    assert view.status_of("b") is AgentStatus.WAITING_FOR_BUDGET and view.agents["b"].note == "waits"
    view.apply(ev.AgentBudgetWaitEnded(run_id=RUN_ID, agent_id="b", layer=1))
    assert view.status_of("b") is AgentStatus.RUNNING and view.agents["b"].note is None
    view.apply(ev.AgentInterrupted(run_id=RUN_ID, agent_id="b", layer=1))
    assert view.status_of("b") is AgentStatus.INTERRUPTED


def test_a_view_folded_from_the_journal_equals_the_live_one() -> None:
    live = RunView()
    lines = []
    for event in sodium_script():
        live.apply(event)
        lines.append(json.dumps(event.to_json()))
    replayed = RunView.of([ev.from_json(json.loads(line)) for line in lines])
    assert replayed.agents == live.agents and replayed.run == live.run
    assert list(replayed.incidents) == list(live.incidents)


def test_a_resumed_runs_clock_counts_its_earlier_running_time_not_the_time_it_was_stopped() -> None:
    view = RunView()
    view.apply(ev.RunStarted(run_id="r", at=10_000.0, program="p", run_dir="runs/r", started_at=1_000.0,
                             resumed=True, active_s=600.0))  # fmt: skip
    assert view.run.running_since == 10_000.0 and view.run.active_before_s == 600.0
    assert view.run.started_at == 1_000.0  # the run's first start is kept (the report's date)
