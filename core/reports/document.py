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


def header(facts: ReportFacts) -> list[str]:
    when = datetime.fromtimestamp(facts.started_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    models = ", ".join(dict.fromkeys(a.model for a in facts.agents if a.model)) or "unknown"
    lines = []
    if facts.simulated:
        lines += [f"> {SIMULATED_NOTE}", ""]
    lines += [
        f"**Question:** {' '.join(facts.question.split())}",
        "",
        f"- **Run:** `{facts.run_id}` ({facts.status})",
        f"- **Date:** {when}",
        f"- **Models:** {models}",
        f"- **Cost:** ${facts.cost_usd:.4f}",
        f"- **Searches:** {facts.searches}",
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
    title = f"{facts.program}: final report" if facts.program else "Final report"
    lines = [f"# {title}", "", *header(facts)]
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
