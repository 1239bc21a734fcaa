"""What each user turn of an agent says: the brief, follow-ups, then "write your report".

Kept apart from the session loop so a program can change its prompts without touching the
mechanics of streaming, retries or checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.config.model import AgentDefaults, ProgramInfo, ResolvedAgent
from core.reports.citethrough import labelled_for_prompt
from core.reports.render import CONTINUE_PROMPT  # the report joins what follows it to the cut text

__all__ = ["CONTINUE_PROMPT", "DEFAULT_FOLLOW_UP", "REPORT_NOW_PROMPT", "build_plan", "first_prompt"]

DEFAULT_FOLLOW_UP = "Continue your research on the open points; search for evidence you do not have yet."
REPORT_NOW_PROMPT = (
    "The research budget for this agent is spent. Without searching further, write your report "
    "now from what you have found: a Markdown document with a summary, key findings with their "
    "citations, and open questions."
)


def first_prompt(agent: ResolvedAgent, program: ProgramInfo, prior_reports: Mapping[str, str]) -> str:
    """The brief in context: the program's question, this agent's angle, and the reports it reads."""
    parts = [
        f"Research program: {program.name}",
        f"Question: {program.question.strip()}",
        f"Your role: {agent.title}",
        f"Your brief: {agent.brief.strip()}",
    ]
    if prior_reports:
        parts.append(
            "Earlier agents of this program wrote the reports below. Build on them, check their "
            "claims where it matters, and cite their sources where you use them. Each source of "
            "an earlier report has a label made of the agent's id and the source's number, like "
            "[market:3]: cite it by writing that label after the claim, for example "
            '"prices fell 18% [market:3]", or several as [market:3, policy:1]. Do not copy URLs: '
            "a label is replaced by the original link in your report."
        )
        for agent_id, report in prior_reports.items():
            labelled = labelled_for_prompt(agent_id, report)
            parts.append(f'<report agent="{agent_id}">\n{labelled}\n</report>')
    return "\n\n".join(parts)


def build_plan(
    agent: ResolvedAgent,
    program: ProgramInfo,
    defaults: AgentDefaults,
    prior_reports: Mapping[str, str],
) -> list[str]:
    """One prompt per user turn, ``max_turns`` long, always ending with the report request."""
    opening = first_prompt(agent, program, prior_reports)
    if agent.max_turns == 1:
        return [f"{opening}\n\n{defaults.report_prompt}"]
    prompts = list(defaults.follow_up_prompts) or [DEFAULT_FOLLOW_UP]
    follow_ups = [prompts[i % len(prompts)] for i in range(agent.max_turns - 2)]
    return [opening, *follow_ups, defaults.report_prompt]
