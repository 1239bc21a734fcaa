"""An agent's report as Markdown: its text with citations as links, then a list of sources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _citation_links(citations: Iterable[Mapping[str, Any]], numbering: dict[str, int]) -> str:
    links = []
    for citation in citations:
        url = citation.get("url")
        if not url:
            continue
        number = numbering.setdefault(url, len(numbering) + 1)
        link = f"[[{number}]]({url})"
        if link not in links:
            links.append(link)
    return "".join(links)


def render_blocks(
    blocks: Sequence[Mapping[str, Any]], numbering: dict[str, int], titles: dict[str, str]
) -> str:
    """Text of the assistant's text blocks, each cited block followed by numbered links."""
    out: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "web_search_tool_result":
            content = block.get("content")
            if isinstance(content, list):
                for result in content:
                    if result.get("url"):
                        titles.setdefault(result["url"], result.get("title") or result["url"])
        if kind != "text":
            continue
        text = str(block.get("text", ""))
        citations = block.get("citations") or []
        for citation in citations:
            if citation.get("url"):
                titles.setdefault(citation["url"], citation.get("title") or citation["url"])
        links = _citation_links(citations, numbering)
        out.append(f"{text}{' ' + links if links else ''}")
    return "".join(out)


def build_report(
    *,
    title: str,
    agent_id: str,
    assistant_turns: Sequence[Sequence[Mapping[str, Any]]],
    partial_note: str | None = None,
) -> str:
    """The report from the assistant's content of the turns that make it (usually the last one).

    Sources are numbered in order of first citation, so ``[3]`` means the same page everywhere.
    """
    numbering: dict[str, int] = {}
    titles: dict[str, str] = {}
    body = "\n\n".join(
        text for text in (render_blocks(turn, numbering, titles).strip() for turn in assistant_turns) if text
    )
    lines = [f"# {title}", "", f"*Agent `{agent_id}`*", ""]
    if partial_note:
        lines += [f"> {partial_note}", ""]
    lines += [body or "_No findings were written._", ""]
    if numbering:
        lines += ["## Sources", ""]
        for url, number in sorted(numbering.items(), key=lambda item: item[1]):
            lines.append(f"{number}. [{titles.get(url, url)}]({url})")
        lines.append("")
    return "\n".join(lines)


def combine_reports(program_name: str, question: str, reports: Mapping[str, str]) -> str:
    """The run's ``report.md``: the final layer's report, or its reports one after another."""
    if len(reports) == 1:
        return next(iter(reports.values()))
    parts = [f"# {program_name}", "", f"**Question:** {question}", ""]
    for report in reports.values():
        parts += [report.strip(), "", "---", ""]
    return "\n".join(parts)
