"""Later layers read earlier reports with labelled sources and cite through the labels."""

from __future__ import annotations

from core.reports.citethrough import LABELS, PriorSources, labelled_for_prompt, split_labels
from core.reports.render import AgentMeta, build_report
from tests.core.reports.conversation import page, research_turn, user


def earlier() -> str:
    messages = [user("b"), research_turn("s1", [page(1), page(2), page(3)], cite=[page(1), page(3)])]
    return build_report(agent=AgentMeta(id="market", title="Market"), messages=messages)


def test_a_report_as_a_later_agent_reads_it_carries_labels_not_numbers() -> None:
    shown = labelled_for_prompt("market", earlier())
    assert "[[1]]" not in shown and "[market:1]" in shown
    assert f"[market:2] Page 3 <{page(3)['url']}>" in shown
    assert "Also consulted" not in shown and page(2)["url"] not in shown


def test_labels_parse_alone_and_in_groups() -> None:
    assert [m.group(1) for m in LABELS.finditer("a [market:3] b [supply-chain:1, policy:12] [x]")] == [
        "market:3",
        "supply-chain:1, policy:12",
    ]
    assert split_labels("supply-chain:1; policy:12") == [("supply-chain", 1), ("policy", 12)]


def test_prior_sources_resolve_by_agent_and_number() -> None:
    prior = PriorSources.of({"market": earlier()})
    source = prior.resolve("market", 2)
    assert source is not None and source.url == page(3)["url"] and source.title == "Page 3"
    assert prior.resolve("market", 3) is None and prior.resolve("policy", 1) is None
