"""A session's state as a resume must find it when a call was cut off: at the turn boundary."""

from __future__ import annotations

from typing import Any

from core.budget.bounds import utf8_bytes
from core.engine.session import SessionState
from core.engine.turn_plan import CONTINUE_PROMPT, REPORT_NOW_PROMPT
from core.reports import numbered


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


ANSWER = {"role": "assistant", "content": [{"type": "text", "text": "found it"}]}


def test_a_plan_prompt_no_call_answered_is_taken_back_in_a_copy() -> None:
    state = SessionState(messages=[user("one"), ANSWER, user("two")], plan_index=2, input_bound=500)
    state.report_from = 2
    saved = state.resumable()
    assert saved.messages == [user("one"), ANSWER] and saved.plan_index == 1
    assert saved.report_from is None and saved.input_bound == 500 - utf8_bytes(user("two"))
    assert len(state.messages) == 3 and state.plan_index == 2 and state.report_from == 2  # untouched


def test_a_budget_stops_write_it_now_prompt_is_taken_back_without_touching_the_plan() -> None:
    state = SessionState(messages=[user("one"), ANSWER, user(REPORT_NOW_PROMPT)], plan_index=1)
    state.report_from = 2
    saved = state.resumable()
    assert saved.messages == [user("one"), ANSWER] and saved.plan_index == 1 and saved.report_from is None


def test_a_continuation_is_kept_as_it_is_saved_after_each_call() -> None:
    for pending, last in (("max_tokens", user(CONTINUE_PROMPT)), ("pause_turn", ANSWER)):
        state = SessionState(messages=[user("one"), ANSWER, last], plan_index=1, pending=pending)
        assert state.resumable().messages == state.messages


def test_the_first_prompt_taken_back_leaves_an_empty_conversation_at_the_plans_start() -> None:
    saved = SessionState(messages=[user("one")], plan_index=1).resumable()
    assert saved.messages == [] and saved.plan_index == 0


def test_a_write_it_now_prompt_listing_its_sources_is_known_as_one() -> None:
    """The budget stop's prompt carries the numbered sources: taken back without touching the plan,
    and, answered, it is the report a resume at the plan's report turn keeps."""
    listed = user(
        f"{REPORT_NOW_PROMPT}\n\n{numbered.HEADING} {numbered.INSTRUCTION}\n\n[1] A page <https://a.example/>"
    )
    saved = SessionState(messages=[user("one"), ANSWER, listed], plan_index=1).resumable()
    assert saved.messages == [user("one"), ANSWER] and saved.plan_index == 1
    assert SessionState(messages=[user("one"), ANSWER, listed, ANSWER]).ends_with_report() == 2
    assert SessionState(messages=[user("one"), ANSWER, user("two"), ANSWER]).ends_with_report() is None
