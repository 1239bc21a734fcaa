"""report.md: one title, a header a reader can trust, the final findings, one Sources list."""

from __future__ import annotations

import re

from core.reports.document import AgentOutcome, ReportFacts, final_document
from core.reports.parse import parse_report
from core.reports.render import AgentMeta, build_report
from tests.core.reports.conversation import assistant, page, research_turn, text, user

QUESTION = "Will sodium-ion batteries displace LFP\nin grid storage?"


def agent_report(agent_id: str, pages: list[dict], body: str) -> str:
    messages = [user("b"), research_turn("s1", pages, cite=pages), user("r"), assistant(text(body, pages[0]))]
    meta = AgentMeta(id=agent_id, title=f"{agent_id.title()} report", layer=3)
    return build_report(agent=meta, messages=messages, body_messages=messages[3:])


def facts(*agents: AgentOutcome, simulated: bool = True) -> ReportFacts:
    return ReportFacts(
        program="sodium-ion-2026", question=QUESTION, run_id="20261130-sodium-1a2b", started_at=1796000000.0,
        status="completed", cost_usd=2.5092, searches=109, simulated=simulated, layers=3, agents=agents,
    )  # fmt: skip


COMPLETED = AgentOutcome("synthesis", "Final synthesis", 3, "claude-sonnet-5", "completed")


def test_one_title_a_full_header_and_one_sources_list() -> None:
    report = agent_report("synthesis", [page(1), page(2)], "# Report: X\n\n## Summary\n\nIt works.")
    killed = AgentOutcome("patents", "Patents", 1, "claude-haiku-5", "killed")
    failed = AgentOutcome("policy", "Policy", 1, "claude-sonnet-5", "failed", error="overloaded")
    doc = final_document(facts(COMPLETED, killed, failed), {"synthesis": report})
    lines = doc.splitlines()
    assert sum(line.startswith("# ") for line in lines) == 1 and lines[0].startswith("# sodium-ion-2026")
    assert doc.count("## Sources") == 1
    head = doc.split("## ", 1)[0]
    for needle in ("Will sodium-ion batteries displace LFP in grid storage?", "20261130-sodium-1a2b",
                   "2026-", "claude-sonnet-5", "claude-haiku-5", "$2.5092", "109", "SIMULATED"):  # fmt: skip
        assert needle in head, needle
    assert "`patents`" in head and "killed" in head and "`policy`" in head and "overloaded" in head
    assert "It works." in doc


def test_a_real_run_says_nothing_about_simulation_and_has_no_notes_when_all_completed() -> None:
    doc = final_document(
        facts(COMPLETED, simulated=False), {"synthesis": agent_report("synthesis", [page(1)], "Ok.")}
    )
    assert "SIMULATED" not in doc and "Incomplete" not in doc


def test_several_final_reports_share_one_numbering() -> None:
    one = agent_report("east", [page(1), page(2)], "East.")
    two = agent_report("west", [page(2), page(3)], "West.")
    doc = final_document(facts(COMPLETED), {"east": one, "west": two})
    sources = parse_report(doc).sources
    assert [s.url for s in sources] == [page(1)["url"], page(2)["url"], page(3)["url"]]
    numbers = {s.url: s.number for s in sources}
    for number, url in re.findall(r"\[\[(\d+)\]\]\((\S+?)\)", doc):
        assert numbers[url] == int(number)
    assert sum(line.startswith("# ") for line in doc.splitlines()) == 1
    assert "## East report" in doc and "## West report" in doc


def test_no_final_report_still_makes_a_document_that_says_so() -> None:
    doc = final_document(facts(), {})
    assert "No findings" in doc and doc.startswith("# ")
