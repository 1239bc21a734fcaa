from __future__ import annotations

from core.config.model import AgentDefaults, ProgramInfo, ResolvedAgent
from core.engine.turn_plan import build_plan

PROGRAM = ProgramInfo(name="p", question="Will it work?")


def agent(max_turns: int) -> ResolvedAgent:
    return ResolvedAgent(
        id="a",
        title="A",
        brief="Look at it.",
        layer=1,
        model="m",
        max_tokens=100,
        max_turns=max_turns,
        max_searches=None,
        reads=(),
    )


def test_the_plan_has_max_turns_prompts_ending_with_the_report() -> None:
    defaults = AgentDefaults()
    for turns in (1, 2, 3, 10):
        plan = build_plan(agent(turns), PROGRAM, defaults, {})
        assert len(plan) == turns
        assert plan[-1].endswith(defaults.report_prompt)
        assert "Will it work?" in plan[0] and "Look at it." in plan[0]


def test_follow_ups_cycle_when_the_plan_is_longer_than_the_list() -> None:
    defaults = AgentDefaults(follow_up_prompts=("first", "second"))
    assert build_plan(agent(6), PROGRAM, defaults, {})[1:5] == ["first", "second", "first", "second"]


def test_prior_reports_are_quoted_in_the_brief() -> None:
    plan = build_plan(agent(2), PROGRAM, AgentDefaults(), {"market": "# Market\nPrices fell."})
    assert '<report agent="market">' in plan[0] and "Prices fell." in plan[0]
