"""Reading back a report this package wrote: title, header, body, Sources, "also consulted".

Reports are files (a resumed or forked run has only the files of agents finished earlier), so
the final document and later layers read them back. The format is our own, so parsing is exact:
the title is the ``#`` line, the header is the italic ``*Agent …*`` line and the ``>`` notes
under it, and the two source lists are the trailing ``## Sources`` / ``## Also consulted`` sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.reports.sources import Source

SOURCES_HEADING = "## Sources"
ALSO_HEADING = "## Also consulted"
META_PREFIX = "*Agent `"
_SOURCE = re.compile(r"^(\d+)\. \[(.*)\]\((\S+)\)\s*$")
_ALSO = re.compile(r"^- \[(.*)\]\((\S+)\)\s*$")


@dataclass(frozen=True, slots=True)
class ParsedReport:
    title: str
    header: str
    body: str
    sources: list[Source] = field(default_factory=list)
    also: list[tuple[str, str]] = field(default_factory=list)  # (url, title)


def parse_report(text: str) -> ParsedReport:
    lines = text.splitlines()
    title, start = "", 0
    for index, line in enumerate(lines):
        if line.strip():
            if line.startswith("# "):
                title, start = line[2:].strip(), index + 1
            break
    header_lines: list[str] = []
    index = start
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index < len(lines) and lines[index].startswith(META_PREFIX):
        while index < len(lines) and (
            lines[index].startswith((META_PREFIX, "> ")) or not lines[index].strip()
        ):
            header_lines.append(lines[index])
            index += 1
    tail_start, sources, also = _trailing_lists(lines, index)
    body = "\n".join(lines[index:tail_start]).strip()
    header = "\n".join(header_lines).strip()
    return ParsedReport(title=title, header=header, body=body, sources=sources, also=also)


def _trailing_lists(lines: list[str], body_start: int) -> tuple[int, list[Source], list[tuple[str, str]]]:
    """Where the trailing source lists begin, and their entries (only if nothing else follows)."""
    sources: list[Source] = []
    also: list[tuple[str, str]] = []
    end = len(lines)
    for heading in (ALSO_HEADING, SOURCES_HEADING):
        position = _last_heading(lines, heading, body_start, end)
        if position is None:
            continue
        entries = [line for line in lines[position + 1 : end] if line.strip()]
        if heading == ALSO_HEADING:
            parsed_also = [m for m in (_ALSO.match(line) for line in entries) if m]
            if len(parsed_also) < len([e for e in entries if e.startswith("- ")]) or not parsed_also:
                continue
            also = [(m.group(2), m.group(1)) for m in parsed_also]
        else:
            matches = [_SOURCE.match(line) for line in entries]
            if not entries or not all(matches):
                continue
            sources = [Source(int(m.group(1)), m.group(3), m.group(2)) for m in matches if m]
        end = position
    return end, sources, also


def _last_heading(lines: list[str], heading: str, start: int, end: int) -> int | None:
    for index in range(end - 1, start - 1, -1):
        if lines[index].strip() == heading:
            return index
    return None
