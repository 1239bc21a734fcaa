"""The run's ``report.md``: one title, a header a reader can trust, the final findings, one Sources list.

Built from plain data (the run's summary and the final layer's report files), so it can be
written at the end of a run, after a resume, or again later from the files alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.reports.parse import parse_report
from core.reports.render import NO_FINDINGS, demote_headings
from core.reports.sources import Numbering, link, sources_section
from core.usage import ALL_BILLED, Unconfirmed, money_text

_LINK = re.compile(r"\[\[(\d+)\]\]\(((?:[^()\s]|\([^()\s]*\))+)\)")
SIMULATED_NOTE = (
    "**SIMULATED**: this run used the offline API simulator. Its sources are synthetic pages on "
    "reserved `.example` domains and its findings are not research."
)
_STATUS_NOTES = {
    "killed": "was killed before it finished; its report is partial",
    "failed": "failed; its report is partial",
    "budget_exhausted": "was stopped by a budget cap; its report may be partial",
    "refused": "refused its brief; its report may be incomplete",
    "interrupted": "was interrupted; its report is partial",
}


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    id: str
    title: str
    layer: int
    model: str
    status: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the header states: all of it from the run's summary and config."""

    program: str
    question: str
    run_id: str
    started_at: float
    status: str
    cost_usd: float
    searches: int
    simulated: bool
    layers: int
    agents: tuple[AgentOutcome, ...] = ()
    unconfirmed: Unconfirmed = ALL_BILLED  # of cost_usd and searches: bounds, not reported usage
    parent: Mapping[str, str] | None = None  # the run and checkpoint a fork was made from

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], question: str) -> ReportFacts:
        agents = tuple(
            AgentOutcome(
                id=str(a.get("id", "")),
                title=str(a.get("title") or a.get("id", "")),
                layer=int(a.get("layer", 0)),
                model=str(a.get("model") or ""),
                status=str(a.get("status", "")),
                error=a.get("error"),
            )
            for a in summary.get("agents", [])
        )
        return cls(
            program=str(summary.get("program", "")),
            question=question,
            run_id=str(summary.get("run_id", "")),
            started_at=float(summary.get("started_at") or 0.0),
            status=str(summary.get("status", "")),
            cost_usd=float(summary.get("cost_usd") or 0.0),
            searches=int(summary.get("searches") or 0),
            simulated=bool(summary.get("simulated", False)),
            layers=int(summary.get("layers") or max((a.layer for a in agents), default=0)),
            agents=agents,
            unconfirmed=Unconfirmed(  # (absent from summaries written before the split: all billed)
                usd=float(summary.get("unconfirmed_usd") or 0.0),
                attempts=int(summary.get("unconfirmed_attempts") or 0),
                searches=int(summary.get("unconfirmed_searches") or 0),
            ),
            parent=_parent(summary.get("parent")),
        )


def agent_notes(facts: ReportFacts) -> list[str]:
    """One line for every agent that did not complete: a reader must know what the findings lack."""
    notes = []
    for agent in facts.agents:
        if agent.status == "completed":
            continue
        what = _STATUS_NOTES.get(agent.status, f"did not finish (status: {agent.status or 'unknown'})")
        error = f" ({agent.error})" if agent.error and agent.status == "failed" else ""
        notes.append(f"Agent `{agent.id}` ({agent.title}, layer {agent.layer}) {what}{error}.")
    return notes


def _parent(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping) or not value.get("run_id"):
        return None
    return {"run_id": str(value["run_id"]), "checkpoint_id": str(value.get("checkpoint_id") or "")}


def title(facts: ReportFacts) -> str:
    """The document's title: the program's question, as text (a reader's natural title for it)."""
    if facts.question.strip():
        return plain_inline(facts.question)
    return f"{plain_inline(facts.program)}: final report" if facts.program else "Final report"


def header(facts: ReportFacts) -> list[str]:
    when = datetime.fromtimestamp(facts.started_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    models = ", ".join(dict.fromkeys(a.model for a in facts.agents if a.model)) or "unknown"
    lines = []
    if facts.simulated:
        lines += [f"> {SIMULATED_NOTE}", ""]
    if facts.program and facts.question.strip():
        lines.append(f"- **Program:** {code_span(facts.program)}")
    lines += [
        f"- **Run:** {code_span(facts.run_id)} ({facts.status})",
    ]
    if facts.parent is not None:
        checkpoint = facts.parent.get("checkpoint_id")
        at = f" at checkpoint {code_span(checkpoint)}" if checkpoint else ""
        lines.append(f"- **Forked from:** run {code_span(facts.parent['run_id'])}{at}")
    lines += [
        f"- **Date:** {when}",
        f"- **Models:** {models}",
        f"- **Cost:** ${facts.cost_usd:.4f} ({money_text(facts.cost_usd, facts.unconfirmed)})",
        f"- **Searches:** {facts.searches} ({facts.unconfirmed.searches} unconfirmed)",
        "",
    ]
    notes = agent_notes(facts)
    if notes:
        lines += ["> **Incomplete inputs.** " + notes[0]]
        lines += [f"> {note}" for note in notes[1:]]
        lines.append("")
    return lines


def _renumbered(body: str, numbering: Numbering, titles: Mapping[str, str]) -> str:
    return _LINK.sub(lambda m: link(numbering.number(m.group(2), titles.get(m.group(2))), m.group(2)), body)


def final_document(facts: ReportFacts, finals: Mapping[str, str]) -> str:
    """``report.md`` from the final layer's reports (agent id -> report Markdown)."""
    lines = [f"# {title(facts)}", "", *header(facts)]
    numbering = Numbering()
    parsed = {agent_id: parse_report(text) for agent_id, text in finals.items()}
    several = len(parsed) > 1
    if not parsed:
        lines += ["## Findings", "", NO_FINDINGS, ""]
    for report in parsed.values():
        titles = {s.url: s.title for s in report.sources}
        body = _renumbered(report.body, numbering, titles)
        for source in report.sources:  # cited in the agent's conversation but not in its findings
            numbering.number(source.url, source.title)
        body = demote_headings(f"# {report.title}\n\n{body}") if several else _findings(report.title, body)
        notes = [line for line in report.header.splitlines() if line.startswith("> ")]
        if several:
            heading, _, rest = body.partition("\n")
            body = "\n".join([heading, "", *notes, rest]) if notes else body
        elif notes:
            body = "\n".join([*notes, "", body])
        lines += [body.strip(), ""]
    lines += sources_section(numbering.sources())
    return "\n".join(lines).rstrip("\n") + "\n"


def _findings(agent_title: str, body: str) -> str:
    """One final agent: its findings under the document's title (its own title becomes a section)."""
    text = body.strip() or NO_FINDINGS
    if not re.search(r"^## ", text, re.MULTILINE):
        return f"## {agent_title}\n\n{text}"
    return text


_URL_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|www\.)|@[^@\s]+\.", re.IGNORECASE)
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]<>#|~&])")  # what can start markup mid-line


def plain_inline(text: str) -> str:
    """``text`` on one line, shown as written by any Markdown viewer: its punctuation escaped, and
    anything a viewer would turn into a link (a URL, ``www.…``, an address) set as code, so a
    question that mentions a page is text, not a link to check or to click."""
    words = []
    for word in text.split():
        if _URL_LIKE.search(word):
            words.append(code_span(word))
        else:
            words.append(_MARKDOWN_PUNCTUATION.sub(r"\\\1", word))
    return " ".join(words)


def code_span(text: str) -> str:
    """``text`` as a code span, whatever backticks it holds."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
