"""The run model folds core events into the rows, header and incidents the app shows."""

from __future__ import annotations

from core import events as ev
from core.api.usage import TokenUsage
from core.control import AgentStatus
from core.view import RunView
from tests.tui.fakes import RUN_ID, sodium_script


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
