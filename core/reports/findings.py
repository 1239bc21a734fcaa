"""Which paragraphs of a report state findings, and whether each cites a source inline.

A reader judges a report by whether each claim says what it rests on. ``verify`` notes the
findings paragraphs that cite nothing, and the tests hold the shipped program's report to citing
most of them, so both count the same way: a paragraph, list item or table of the findings (after
the header, before ``## Sources``) that states something. Headings, notes (``>``), code, questions
(a paragraph ending in ``?``, or anything under an "open questions" heading) and short lead-ins
are not findings. A paragraph cites when it holds a numbered citation link ``[[n]](url)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

from core.reports.parse import parse_report

MIN_WORDS = 8
CITATION = re.compile(r"\[\[(\d+)\]\]\(((?:[^()\s]|\([^()\s]*\))+)\)")
"""A numbered citation link as reports write it: ``[[3]](https://…)``."""
_QUESTIONS = re.compile(r"\bquestions?\b|\bnext steps?\b|\bunknowns?\b", re.IGNORECASE)
_MD = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True, slots=True)
class Paragraph:
    line: int  # 1-based, in the whole report
    text: str

    @property
    def cites(self) -> bool:
        return bool(CITATION.search(self.text))


def body_start(report: str) -> tuple[str, int]:
    """The report's findings (header and title excluded, source lists cut) and how many lines
    precede them. The final document's header has no agent line: its findings begin at its first
    section heading."""
    parsed = parse_report(report)
    body = parsed.body
    if not parsed.header:
        heading = re.search(r"^#{2,6} ", body, re.MULTILINE)
        body = body[heading.start() :] if heading else ""
    position = report.find(body) if body else -1
    return body, report.count("\n", 0, position) if position >= 0 else 0


def findings_paragraphs(report: str) -> list[Paragraph]:
    """The findings paragraphs of a report as :mod:`core.reports.render` or ``document`` write it."""
    body, offset = body_start(report)
    lines = body.splitlines()
    found: list[Paragraph] = []
    under_questions, quoted = False, 0
    tokens = _MD.parse(body)
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            under_questions = bool(_QUESTIONS.search(tokens[index + 1].content))
        elif token.type in ("blockquote_open", "blockquote_close"):
            quoted += 1 if token.type == "blockquote_open" else -1
        if token.type not in ("paragraph_open", "table_open") or quoted or under_questions:
            continue
        start, end = token.map or (0, 0)
        text = "\n".join(lines[start:end]).strip()
        if len(text.split()) >= MIN_WORDS and not text.rstrip("*_ ").endswith("?"):
            found.append(Paragraph(offset + start + 1, text))
    return found
