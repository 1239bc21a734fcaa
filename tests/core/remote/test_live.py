"""The owner's snapshot for attaching: the rows as they stand, the log shown and never re-folded."""

from __future__ import annotations

import json
import time

import pytest

from core import events as ev
from core.remote.live import LiveState
from core.status import AgentStatus, RunStatus
from core.usage import TokenUsage
from core.view import RunView

RUN = "r1"


def killed_agent_journal() -> list[ev.Event]:
    """Two agents; ``a`` is killed mid-call, the cut-off attempt charged, after a retry."""
    usage = TokenUsage(input_tokens=1000, output_tokens=200, web_search_requests=1)
    return [
        ev.RunStarted(run_id=RUN, program="p", run_dir="d", agents=(("a", 1, "A"), ("b", 1, "B"))),
        ev.LayerStarted(run_id=RUN, layer=1, agent_ids=("a", "b")),
        ev.AgentStarted(run_id=RUN, agent_id="a", layer=1),
        ev.AgentStarted(run_id=RUN, agent_id="b", layer=1),
        ev.TurnCompleted(
            run_id=RUN, agent_id="a", layer=1, turn=1, stop_reason="end_turn", usage=usage, cost_usd=0.5
        ),
        ev.RetryScheduled(
            run_id=RUN,
            agent_id="a",
            layer=1,
            turn=1,
            error_kind="overloaded",
            status_code=529,
            attempt=1,
            wait_s=0.1,
        ),
        ev.TurnCompleted(
            run_id=RUN, agent_id="b", layer=1, turn=1, stop_reason="end_turn", usage=usage, cost_usd=0.7
        ),
        ev.AttemptCharged(
            run_id=RUN,
            agent_id="a",
            layer=1,
            turn=2,
            usage=usage,
            cost_usd=0.4,
            basis="worst_case",
            outcome="killed",
        ),
        ev.AgentKilled(run_id=RUN, agent_id="a", layer=1, turn=1, report_path="reports/a.md"),
    ]


def test_an_attached_view_counts_a_killed_agents_charge_once() -> None:
    journal = killed_agent_journal()
    live = LiveState()
    live.written(journal, 1234)
    snapshot = json.loads(json.dumps(live.snapshot()))
    attached = RunView.of([ev.from_json(data) for data in snapshot["events"]])

    assert attached.agents == live.view.agents
    a = attached.agents["a"]
    assert (a.status, a.turn, a.searches, a.retries) == (AgentStatus.KILLED, 1, 2, 1)
    assert a.cost_usd == 0.5 + 0.4  # the charge once (a replay of it made this 1.3)
    assert attached.spent_usd == live.view.spent_usd == 0.5 + 0.4 + 0.7
    assert list(attached.incidents) == list(live.view.incidents)  # the log is shown all the same
    assert [i.kind for i in attached.incidents] == ["overloaded", "charged"]


def test_the_journal_after_the_snapshot_folds_onto_it_to_where_the_owner_is() -> None:
    journal = killed_agent_journal()
    rest = [
        ev.AgentFinished(run_id=RUN, agent_id="b", layer=1, status=AgentStatus.COMPLETED, turns=1),
        ev.RunFinished(run_id=RUN, status=RunStatus.KILLED, cost_usd=1.6),
    ]
    live = LiveState()
    live.written(journal[:6], 100)
    attached = RunView.of([ev.from_json(data) for data in json.loads(json.dumps(live.snapshot()))["events"]])
    for event in journal[6:] + rest:
        attached.apply(event)
    live.written(journal[6:] + rest, 200)
    assert attached.agents == live.view.agents == RunView.of(journal + rest).agents
    assert attached.run == live.view.run


def test_an_attached_view_shows_the_batch_in_progress_and_who_waits_in_it() -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=200)
    now = time.time()
    journal: list[ev.Event] = [
        ev.RunStarted(run_id=RUN, program="p", run_dir="d", agents=(("a", 1, "A"), ("b", 1, "B"))),
        ev.LayerStarted(run_id=RUN, layer=1, agent_ids=("a", "b")),
        ev.AgentStarted(run_id=RUN, agent_id="a", layer=1),
        ev.AgentStarted(run_id=RUN, agent_id="b", layer=1),
        ev.BatchSubmitted(run_id=RUN, layer=1, at=now - 30, batch_id="msgbatch_1", requests=2),
        ev.AgentBatched(run_id=RUN, agent_id="a", layer=1, turn=0, batch_id="msgbatch_1", custom_id="a-t1"),
        ev.AgentBatched(run_id=RUN, agent_id="b", layer=1, turn=0, batch_id="msgbatch_1", custom_id="b-t1"),
        ev.BatchProgress(
            run_id=RUN,
            layer=1,
            at=now,
            batch_id="msgbatch_1",
            processing_status="in_progress",
            request_counts={"processing": 1, "succeeded": 1},
            elapsed_s=30.0,
            next_poll_s=15.0,
        ),
        ev.TurnCompleted(
            run_id=RUN, agent_id="a", layer=1, turn=1, stop_reason="end_turn", usage=usage, cost_usd=0.5
        ),
    ]
    live = LiveState()
    live.written(journal, 99)
    attached = RunView.of([ev.from_json(data) for data in json.loads(json.dumps(live.snapshot()))["events"]])

    assert attached.agents == live.view.agents
    assert attached.agents["a"].note is None  # its result came: no longer in the batch
    assert attached.agents["b"].note == "in batch msgbatch_1"
    [line] = attached.live_batches
    assert (line.batch_id, line.requests, line.request_counts) == (
        "msgbatch_1",
        2,
        {"processing": 1, "succeeded": 1},
    )
    assert attached.run.batch == line
    assert line.next_poll_at is not None and line.next_poll_at == pytest.approx(now + 15, abs=5)
    assert line.text(line.next_poll_at - 15).startswith("L1 batch msgbatch_1: 1/2 done · 0m")
    assert line.text(line.next_poll_at - 15).endswith(" · next poll in 15s")
