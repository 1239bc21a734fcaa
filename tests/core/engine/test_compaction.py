"""Conversations that outgrow the context window are compacted, never failed."""

from __future__ import annotations

import json
from pathlib import Path

from core.control import AgentStatus, RunStatus
from core.engine.compaction import NOTE_PREFIX, compacted, plan_compaction
from core.events import ApiErrorRaised, ContextCompacted, Event
from core.runner import start_run
from tests.core import programs


def turn(user: str, answer: str, extra: list[dict] | None = None) -> list[dict]:
    content = [*(extra or []), {"type": "text", "text": answer}]
    return [
        {"role": "user", "content": [{"type": "text", "text": user}]},
        {"role": "assistant", "content": content},
    ]


def test_compaction_drops_whole_old_turns_and_keeps_the_brief_and_recent_turns() -> None:
    search = {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://a.example/x",
                "title": "A",
                "encrypted_content": "opaque",
                "page_age": None,
            }
        ],
    }
    messages = (
        turn("brief", "first")
        + turn("more", "second", [search])
        + turn("again", "third")
        + turn("last", "4th")
    )
    plan = plan_compaction(messages, keep_recent_turns=2)
    assert plan is not None and plan.keep_from == 4
    assert "first" in plan.notes and "second" in plan.notes
    result = compacted(messages, plan, "SUMMARY")
    assert result[0] == messages[0]
    assert result[1]["content"][0]["text"] == NOTE_PREFIX + "SUMMARY"
    assert result[2:] == messages[4:], "kept turns are unchanged, encrypted content untouched"
    assert "opaque" not in json.dumps(result), "the old search result left whole"


def test_nothing_to_compact_in_a_short_conversation() -> None:
    assert plan_compaction(turn("brief", "only"), keep_recent_turns=2) is None


async def test_an_agent_outgrowing_a_small_context_window_finishes_its_report(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("verbose", max_turns=7)],
        simulator={"context_window": 24000, "searches_per_turn": [2, 3]},
        execution={"context": {"keep_recent_turns": 1}},
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    outcome = await orchestrator.run()

    assert [e for e in events if isinstance(e, ApiErrorRaised)] == [], "no 400 reaches the user"
    assert outcome.status is RunStatus.COMPLETED
    assert orchestrator.agent_status("verbose") is AgentStatus.COMPLETED
    assert any(isinstance(e, ContextCompacted) for e in events)
    report = (outcome.run_dir / "reports" / "verbose.md").read_text()
    assert "Partial report" not in report and "## Sources" in report
