"""What an agent's whole conversation found and cited, and the numbering a report gives it.

A report's Sources come from every turn, not only the one that writes the report: on the real
API the report turn usually searches nothing and may cite nothing, while earlier turns cited
many pages. Titles are the ones the search returned (a citation's title is the fallback).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Block = Mapping[str, Any]
CARRIED_HEADING = "Pages cited in the turns compacted above:"
"""Ends a compaction note: the pages the dropped turns cited, so the report still lists them."""
_CARRIED = re.compile(r"^- (.*) <(https?://\S+)>\s*$")


def assistant_blocks(messages: Iterable[Mapping[str, Any]]) -> list[Block]:
    """Every content block the assistant produced, in conversation order."""
    blocks: list[Block] = []
    for message in messages:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            blocks.extend(b for b in content if isinstance(b, Mapping))
    return blocks


def search_results(block: Block) -> list[Mapping[str, Any]]:
    """The results of a ``web_search_tool_result`` block (none for an error or another block)."""
    if block.get("type") != "web_search_tool_result":
        return []
    content = block.get("content")
    if not isinstance(content, list):
        return []
    return [r for r in content if isinstance(r, Mapping) and isinstance(r.get("url"), str) and r["url"]]


@dataclass(slots=True)
class ConversationSources:
    """Pages the searches returned (with titles) and the pages cited, both in first-seen order."""

    titles: dict[str, str] = field(default_factory=dict)  # every URL a search returned -> its title
    cited: dict[str, str] = field(default_factory=dict)  # every URL cited -> the citation's title

    @classmethod
    def of(cls, messages: Iterable[Mapping[str, Any]]) -> ConversationSources:
        found = cls()
        found.add(messages)
        return found

    def add(self, messages: Iterable[Mapping[str, Any]]) -> None:
        """Read more of the conversation: ``of(a + b)`` is ``of(a)`` then ``add(b)``."""
        for block in assistant_blocks(messages):
            for result in search_results(block):
                self.titles.setdefault(result["url"], str(result.get("title") or result["url"]))
            if block.get("type") == "text" and CARRIED_HEADING in str(block.get("text", "")):
                self._carried(str(block["text"]))
            if block.get("type") == "text":
                for citation in block.get("citations") or []:
                    url = citation.get("url") if isinstance(citation, Mapping) else None
                    if isinstance(url, str) and url:
                        self.cited.setdefault(url, str(citation.get("title") or url))

    def copy(self) -> ConversationSources:
        return ConversationSources(dict(self.titles), dict(self.cited))

    def _carried(self, text: str) -> None:
        for line in text.split(CARRIED_HEADING, 1)[1].splitlines():
            match = _CARRIED.match(line)
            if match:
                self.titles.setdefault(match.group(2), match.group(1))
                self.cited.setdefault(match.group(2), match.group(1))

    def title(self, url: str) -> str:
        return self.titles.get(url) or self.cited.get(url) or url


@dataclass(frozen=True, slots=True)
class Source:
    number: int
    url: str
    title: str


@dataclass(slots=True)
class Numbering:
    """One number per URL for a whole document, in order of first use; ``[3]`` means one page."""

    titles: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)

    def number(self, url: str, title: str | None = None) -> int:
        if title and url not in self.titles:
            self.titles[url] = title
        return self.numbers.setdefault(url, len(self.numbers) + 1)

    def sources(self) -> list[Source]:
        return [Source(n, url, self.titles.get(url, url)) for url, n in self.numbers.items()]

    def __contains__(self, url: object) -> bool:
        return url in self.numbers


def link(number: int, url: str) -> str:
    """The inline form of a citation: ``[[3]](https://…)``."""
    return f"[[{number}]]({url})"


def sources_section(sources: Sequence[Source], also: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The ``## Sources`` list (numbered) and the ``## Also consulted`` list, as Markdown lines."""
    lines: list[str] = []
    if sources:
        lines += ["## Sources", ""]
        lines += [f"{s.number}. [{_escape(s.title)}]({s.url})" for s in sources]
        lines.append("")
    if also:
        lines += ["## Also consulted", "", "Returned by the searches but not cited:", ""]
        lines += [f"- [{_escape(title)}]({url})" for url, title in also]
        lines.append("")
    return lines


def _escape(title: str) -> str:
    return " ".join(title.replace("[", "(").replace("]", ")").split())


def carried_sources_note(dropped: Iterable[Mapping[str, Any]]) -> str:
    """What a compaction note appends: every page the dropped turns cited (and earlier notes carried)."""
    found = ConversationSources.of(dropped)
    if not found.cited:
        return ""
    lines = [f"- {found.title(url)} <{url}>" for url in found.cited]
    return "\n\n" + CARRIED_HEADING + "\n" + "\n".join(lines)
