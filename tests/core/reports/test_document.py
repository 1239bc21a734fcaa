"""report.md: one title, a header a reader can trust, the final findings, one Sources list."""

from __future__ import annotations

import re
from dataclasses import replace

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
    assert sum(line.startswith("# ") for line in lines) == 1
    assert (
        lines[0] == "# Will sodium-ion batteries displace LFP in grid storage?"
    )  # the question is the title
    assert doc.count("## Sources") == 1
    assert "Report: X" not in doc and "## Summary" in doc  # the model's own title gives way to ours
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


def test_the_header_and_an_agents_header_tell_billed_from_unconfirmed_dollars() -> None:
    from core.usage import Unconfirmed

    summary = {
        "run_id": "r", "status": "completed", "cost_usd": 2.5, "searches": 10, "agents": [],
        "billed_usd": 2.0, "unconfirmed_usd": 0.5, "unconfirmed_attempts": 2, "unconfirmed_searches": 1,
    }  # fmt: skip
    header = final_document(ReportFacts.from_summary(summary, QUESTION), {}).split("## ", 1)[0]
    assert (
        "**Cost:** $2.5000 ($2.0000 billed + $0.5000 unconfirmed (2 attempts whose usage never arrived))"
        in header
    )
    assert "**Searches:** 10 (1 unconfirmed)" in header
    older = {k: v for k, v in summary.items() if not k.startswith(("billed", "unconfirmed"))}
    assert "$2.5000 billed + $0.0000 unconfirmed" in final_document(
        ReportFacts.from_summary(older, QUESTION), {}
    )

    meta = AgentMeta(id="a", title="A", cost_usd=0.75, unconfirmed=Unconfirmed(0.25, 1, 0))
    line = build_report(agent=meta, messages=[user("b"), assistant(text("Ok.", page(1)))]).splitlines()[2]
    assert "$0.7500 ($0.5000 billed + $0.2500 unconfirmed (1 attempt whose usage never arrived))" in line


def test_a_fork_says_which_run_and_checkpoint_it_was_forked_from() -> None:
    base = facts(COMPLETED)
    parent = {"run_id": "20261129-sodium-9f9f", "checkpoint_id": "000019-market-t004"}
    fork = replace(base, parent=parent)
    doc = final_document(fork, {"synthesis": agent_report("synthesis", [page(1)], "Ok.")})
    head = doc.split("## ", 1)[0]
    assert "**Forked from:** run `20261129-sodium-9f9f` at checkpoint `000019-market-t004`" in head
    assert "Forked" not in final_document(base, {"synthesis": agent_report("synthesis", [page(1)], "Ok.")})
    summary = {"agents": [], "parent": {"run_id": "p", "checkpoint_id": "c"}}
    assert ReportFacts.from_summary(summary, "q").parent == {"run_id": "p", "checkpoint_id": "c"}


def test_a_question_that_mentions_links_is_text_in_the_title_not_a_link() -> None:
    from core.reports.links import rendered_links

    question = "Is https://evil.example/x or www.evil.example [trusted](javascript:alert(1)) <b>?"
    base = facts(COMPLETED)
    asked = replace(base, question=question)
    doc = final_document(asked, {})
    title = doc.splitlines()[0]
    assert title.startswith("# Is ") and "evil.example/x" in title and "alert" in title
    assert rendered_links(doc) == []
