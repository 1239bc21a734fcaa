"""Compaction drops old turns; the pages they cited stay in the agent's report."""

from __future__ import annotations

from pathlib import Path

from core.control import RunStatus
from core.engine.compaction import CompactionPlan, compacted
from core.persistence.checkpoints import CheckpointStore, decode_checkpoint
from core.reports.parse import parse_report
from core.reports.render import AgentMeta, build_report
from core.reports.sources import ConversationSources, carried_sources_note
from core.runner import start_run
from tests.core import programs
from tests.core.reports.conversation import assistant, page, research_turn, text, user


def compact(messages: list, keep_from: int) -> list:
    note = "Summary of the earlier turns." + carried_sources_note(messages[1:keep_from])
    return compacted(messages, CompactionPlan(keep_from=keep_from, notes=""), note)


def test_pages_cited_in_compacted_turns_stay_sources_through_two_compactions() -> None:
    messages = [user("brief"), research_turn("s1", [page(1), page(2)], cite=[page(1)]), user("more")]
    messages += [research_turn("s2", [page(3)], cite=[page(3)]), user("more")]
    messages = compact(messages, 2)  # drops the first research turn
    messages += [research_turn("s4", [page(4)], cite=[page(4)]), user("more")]
    messages = compact(messages, 2)  # drops the first note and the second research turn
    messages += [user("report"), assistant(text("Findings."))]
    report = parse_report(build_report(agent=AgentMeta(id="a", title="A"), messages=messages))
    assert {s.url for s in report.sources} == {page(n)["url"] for n in (1, 3, 4)}
    assert {s.title for s in report.sources} == {"Page 1", "Page 3", "Page 4"}


async def test_a_compacting_agent_reports_every_page_it_ever_cited(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("verbose", max_turns=7)],
        simulator={"context_window": 24000, "searches_per_turn": [2, 3]},
        execution={"context": {"keep_recent_turns": 1}},
    )
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    outcome = await orchestrator.run()
    assert outcome.status is RunStatus.COMPLETED
    ever_cited: set[str] = set()
    bases = 0
    for info in CheckpointStore(outcome.run_dir).list():
        body = decode_checkpoint(info.path.read_bytes(), info.id)
        bases += body["base"] and body["offset"] == 0 and info.turn > 1
        ever_cited |= set(ConversationSources.of(body["messages"]).cited)
    assert bases, "the conversation was compacted (a full copy was written after the first turn)"
    report = parse_report((outcome.run_dir / "reports" / "verbose.md").read_text())
    assert ever_cited <= {s.url for s in report.sources}
