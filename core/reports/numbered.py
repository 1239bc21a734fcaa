"""The numbered sources a report turn is given, and the ``[n]`` markers that cite them.

A report turn writes from what the conversation found; without numbers to cite, a model writing
"the key findings" cites almost nothing inline and a reader cannot tell which claim rests on which
page. So the report prompt lists the agent's sources, numbered (the pages its answers cited first,
then the other pages its searches returned), and asks for ``[n]`` after each claim. The list is
part of the conversation (the prompt is saved with it), so the report is rendered from exactly
the numbers the model was given: ``[3]`` becomes a link to source 3's URL, numbered again in the
report's own Sources list. A number that was not given stays as written, visibly unresolved
(``verify`` names it).

The list is text we build, so its size is known exactly for the sources found so far
(:func:`listing_bytes`); a research call's reservation adds, per search it is granted, room for the
pages those results may add (:data:`RESULTS_PER_SEARCH` lines of at most :data:`LINE_BYTES`; at
most :data:`MAX_LISTED` in all). The report prompt is then built within the room its reservation
held (:func:`with_sources`' ``room``): a search that returned more pages than that loses its last
uncited ones from the list (they stay in the report's Sources), never the bound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.reports.sources import ConversationSources, Source

HEADING = "Sources you can cite, numbered:"
"""Opens the list in a report prompt (and tells the reader of a saved conversation what follows)."""
INSTRUCTION = (
    "After each claim, write the number of the source that supports it in brackets, for example "
    '"prices fell 18% [3]", or several as [3, 7]. Use only these numbers and do not copy URLs: each '
    "number becomes a link to its page in your report."
)
MAX_LISTED = 40
TITLE_BYTES = 120
URL_BYTES = 300
"""Titles are cut, and longer URLs left out, at these sizes (bytes as sent: UTF-8, JSON-escaped)."""
LINE_BYTES = len(f"[{MAX_LISTED}] ") + TITLE_BYTES + len(" <>") + URL_BYTES + len("\\n")
"""Most bytes one listed source adds to a request."""
RESULTS_PER_SEARCH = 10
"""Pages one search may add to the list (a search returns about ten results); beyond this room
the list stops (see the module docstring)."""
RENUMBERING_BYTES = 9
"""A page cited later moves up the list: the sources numbered 1-9 may gain a digit each."""
_UNLISTABLE = re.compile(r"[\s<>]")
"""What a listed URL may not hold: it ends at white space and is written between ``<`` and ``>``."""
_ENTRY = re.compile(r"^\[(\d+)\] (.*) <(\S+)>$")
MARKERS = re.compile(r"(?<![\\\[\w])\[(\d{1,3}(?:\s*(?:,|;|-|–)\s*\d{1,3})*)\](?![(\[:])")
"""``[3]``, ``[3, 7]``, ``[3-5]``: not a link's text (``[3](…)``), a reference (``[3]:``) or ``[[3]]``."""


class SourcesSoFar:
    """The sources of one growing conversation, kept between its calls: each call sizes the report
    the agent may write next, and reading the whole conversation again for it cost every call more
    than the last. Every message but the last is read once; the last (a continuation may still
    extend it) each time; a history that is not the one read before (compacted, a message taken
    back) is read again from its start."""

    def __init__(self) -> None:
        self._read: list[Mapping[str, Any]] = []
        self._found = ConversationSources()

    def of(self, messages: Sequence[Mapping[str, Any]]) -> ConversationSources:
        head = messages[:-1]
        if len(head) < len(self._read) or any(a is not b for a, b in zip(self._read, head, strict=False)):
            self._read, self._found = [], ConversationSources()
        new = head[len(self._read) :]
        self._found.add(new)
        self._read.extend(new)
        found = self._found.copy()
        found.add(messages[-1:])
        return found


def listed(messages: Iterable[Mapping[str, Any]], found: ConversationSources | None = None) -> list[Source]:
    """The sources a report prompt lists: cited pages first, then other returned pages, bounded
    (``found``: the conversation's sources when they are known already)."""
    found = found if found is not None else ConversationSources.of(messages)
    urls = list(dict.fromkeys([*found.cited, *found.titles]))
    sources: list[Source] = []
    for url in urls:
        if len(sources) >= MAX_LISTED:
            break
        if sent_bytes(url) > URL_BYTES or _UNLISTABLE.search(url):
            continue
        title = " ".join(found.title(url).split())
        if not title.isprintable():
            title = "".join(c for c in title if c.isprintable())
        title = _shortened(title or url)
        sources.append(Source(len(sources) + 1, url, title))
    return sources


def sent_bytes(text: str) -> int:
    """Bytes of ``text`` inside a request's JSON (UTF-8, escaped): what a byte bound counts."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def _shortened(title: str) -> str:
    if sent_bytes(title) <= TITLE_BYTES:
        return title
    cut = title
    while sent_bytes(cut + "…") > TITLE_BYTES:
        cut = cut[: -max(1, (sent_bytes(cut) - TITLE_BYTES) // 4)]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def _listing(sources: list[Source]) -> str:
    """What a prompt is followed by to list ``sources`` (nothing when there are none)."""
    if not sources:
        return ""
    lines = [f"[{s.number}] {s.title} <{s.url}>" for s in sources]
    return "\n\n" + "\n\n".join([f"{HEADING} {INSTRUCTION}", "\n".join(lines)])


HEAD_BYTES = sent_bytes(_listing([Source(1, "", "")])) - len("[1]  <>")
"""Bytes the list's heading and instruction add, once it lists anything."""


def with_sources(prompt: str, messages: Iterable[Mapping[str, Any]], room: int | None = None) -> str:
    """``prompt`` followed by the numbered list of the conversation's sources (as is when it has
    none), the list taking at most ``room`` bytes as sent (the sources that do not fit are left
    out, the other returned pages first since the cited ones lead)."""
    sources = listed(messages)
    if room is not None:
        while sources and sent_bytes(_listing(sources)) > room:
            sources.pop()
    return prompt + _listing(sources)


def listing_bytes(messages: Sequence[Mapping[str, Any]], read: SourcesSoFar | None = None) -> tuple[int, int]:
    """Bytes the list adds to a report prompt written now (exact), and how many sources it lists
    (``read``: what the conversation's earlier calls read of it)."""
    sources = listed(messages, read.of(messages) if read is not None else None)
    return sent_bytes(_listing(sources)), len(sources)


def growth(listed_now: int, searches: int) -> int:
    """Bytes the list may grow by, from ``listed_now`` sources, when ``searches`` more have run."""
    head = HEAD_BYTES if listed_now == 0 and searches > 0 else 0
    lines = min(searches * RESULTS_PER_SEARCH, MAX_LISTED - listed_now)
    return head + max(0, lines) * LINE_BYTES + (RENUMBERING_BYTES if listed_now else 0)


def given(text: str) -> dict[int, Source]:
    """The numbered sources listed in a prompt's text (none when it lists none)."""
    _, found, listing = text.partition(HEADING)
    if not found:
        return {}
    sources = {}
    for line in listing.splitlines():
        match = _ENTRY.match(line.strip())
        if match:
            number = int(match.group(1))
            sources[number] = Source(number, match.group(3), match.group(2))
    return sources


def marker_numbers(inner: str) -> list[int]:
    """``"3, 5-7"`` -> ``[3, 5, 6, 7]`` (a range of more than 20 is read as its two ends)."""
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", inner.strip()):
        ends = [int(n) for n in re.split(r"\s*[-–]\s*", part)]
        if len(ends) == 2 and 0 <= ends[1] - ends[0] <= 20:
            numbers += range(ends[0], ends[1] + 1)
        else:
            numbers += ends
    return list(dict.fromkeys(numbers))
