"""The next request is a pure function of the conversation, the plan and the grant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.budget.sizing import REPORT_OUTPUT_FLOOR, RESEARCH_OUTPUT_FLOOR
from core.config.loader import load_config
from core.config.model import ResearchConfig
from core.engine.request import (
    Turn,
    call_request,
    granted,
    request_params,
    search_ask,
    user_message,
)
from tests.core import programs

SEARCHED = {
    "role": "assistant",
    "content": [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "Found it."},
    ],
}


def config(tmp_path: Path, **defaults: Any) -> ResearchConfig:
    data = programs.program([programs.agent("solo", max_searches=4)], defaults=defaults)
    return load_config(programs.write(tmp_path, data))


def test_a_research_turn_asks_for_its_searches_and_sends_what_was_granted(tmp_path: Path) -> None:
    cfg = config(tmp_path, web_search={"max_uses": 5})
    [agent] = cfg.agents()
    turn = Turn([user_message("brief")], searches=1, tools=None, writing_report=False)
    params = request_params(agent, cfg.defaults, turn)
    assert params["tools"][0]["max_uses"] == 3  # the agent has 3 of its 4 searches left
    ask = search_ask(params, agent, cfg.defaults, turn)
    assert (ask.wanted, ask.restricted) == (3, [])
    request = call_request(agent, cfg.defaults, ask, input_tokens=500, report=False, report_prompt_tokens=40)
    # It may shrink to fit (core.budget.sizing), to one search at least.
    assert (request.max_searches, request.min_searches, request.report_input_tokens) == (3, 1, 540)
    assert (request.min_max_tokens, request.min_report_tokens) == (RESEARCH_OUTPUT_FLOOR, REPORT_OUTPUT_FLOOR)
    assert granted(params, ask, 2)["tools"][0]["max_uses"] == 2
    assert params["tools"][0]["max_uses"] == 3  # the base request is left as it was (a retry asks again)


def test_a_grant_shrunk_to_fit_is_sent_as_granted(tmp_path: Path) -> None:
    cfg = config(tmp_path, web_search={"max_uses": 5}, max_tokens=4096)
    [agent] = cfg.agents()
    turn = Turn([user_message("brief")], searches=0, tools=None, writing_report=False)
    params = request_params(agent, cfg.defaults, turn)
    sent = granted(params, search_ask(params, agent, cfg.defaults, turn), 1, 700)
    assert (sent["max_tokens"], sent["tools"][0]["max_uses"]) == (700, 1)
    assert params["max_tokens"] == 4096
    report = Turn([user_message("report")], 0, None, writing_report=True)
    ask = ask_of(cfg, report)
    request = call_request(agent, cfg.defaults, ask, input_tokens=500, report=True, report_prompt_tokens=0)
    assert (request.max_tokens, request.min_max_tokens, request.report) == (4096, REPORT_OUTPUT_FLOOR, True)


def test_a_call_granted_no_search_defines_the_tool_only_when_the_history_needs_it(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    [agent] = cfg.agents()
    report = Turn([user_message("brief"), SEARCHED, user_message("report")], 0, None, writing_report=True)
    params = request_params(agent, cfg.defaults, report)
    assert "tools" not in params  # a report asks for no search
    ask = search_ask(params, agent, cfg.defaults, report)
    sent = granted(params, ask, 0)
    assert sent["tool_choice"] == {"type": "none"} and sent["tools"][0]["name"] == "web_search"
    fresh = Turn([user_message("report")], 0, None, writing_report=True)
    assert "tools" not in granted(request_params(agent, cfg.defaults, fresh), ask_of(cfg, fresh), 0)


def test_a_report_call_writes_no_cache_and_is_reserved_at_the_plain_input_price(tmp_path: Path) -> None:
    """Nothing after the report reads what it would write, and its prompt matches nothing cached
    (no search allowance: other tools than the research calls'), so breakpoints would only add
    the write premium to the dearest prompt of the conversation."""
    for ttl in ("5m", "1h"):
        cfg = config(tmp_path / ttl, caching={"enabled": True, "ttl": ttl})
        [agent] = cfg.agents()
        history = [user_message("brief"), SEARCHED, user_message("more"), SEARCHED]
        research = Turn([*history, user_message("go on")], 1, None, writing_report=False)
        report = Turn([*history, user_message("report")], 1, None, writing_report=True)
        assert json.dumps(request_params(agent, cfg.defaults, research)).count("cache_control") == 3
        params = request_params(agent, cfg.defaults, report)
        ask = search_ask(params, agent, cfg.defaults, report)
        assert "cache_control" not in json.dumps(granted(params, ask, 0))
        asked = call_request(agent, cfg.defaults, ask, input_tokens=500, report=True, report_prompt_tokens=0)
        assert asked.cache_write == "none"
        turn = call_request(agent, cfg.defaults, ask_of(cfg, research), input_tokens=500, report=False,
                            report_prompt_tokens=40)  # fmt: skip
        assert turn.cache_write == ttl


def ask_of(cfg: ResearchConfig, turn: Turn) -> Any:
    [agent] = cfg.agents()
    return search_ask(request_params(agent, cfg.defaults, turn), agent, cfg.defaults, turn)


def test_cache_breakpoints_mark_the_last_two_user_messages_only(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    [agent] = cfg.agents()
    messages = [user_message("one"), SEARCHED, user_message("two"), SEARCHED, user_message("three")]
    params = request_params(agent, cfg.defaults, Turn(messages, 0, [], writing_report=False))
    marked = [i for i, m in enumerate(params["messages"]) if "cache_control" in m["content"][-1]]
    assert marked == [2, 4]
    assert all("cache_control" not in m["content"][-1] for m in messages)  # the conversation is not touched
    assert "tools" not in params  # the turn's frozen tool list was empty


def test_a_grant_without_the_cache_sends_no_breakpoint_and_leaves_the_request_as_it_was(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path, web_search={"max_uses": 5}, caching={"enabled": True, "ttl": "1h"})
    [agent] = cfg.agents()
    history = [user_message("brief"), SEARCHED, user_message("more")]
    turn = Turn(history, searches=1, tools=None, writing_report=False)
    params = request_params(agent, cfg.defaults, turn)
    ask = search_ask(params, agent, cfg.defaults, turn)
    marked = json.dumps(params).count("cache_control")
    assert marked == 3  # the system prompt and the last two user turns

    sent = granted(params, ask, 1, 700, cached=False)
    assert "cache_control" not in json.dumps(sent)
    assert (sent["max_tokens"], sent["tools"][0]["max_uses"]) == (700, 1)
    assert [m["content"][0].get("text") for m in sent["messages"]] == ["brief", None, "more"]
    assert json.dumps(params).count("cache_control") == marked  # a retry may still send it cached
    assert json.dumps(granted(params, ask, 1, 700)).count("cache_control") == marked
    request = call_request(agent, cfg.defaults, ask, input_tokens=500, report=False, report_prompt_tokens=40)
    assert not request.cache_optional and request.min_searches == 1  # last resorts: the caller's to allow
    last = call_request(agent, cfg.defaults, ask, input_tokens=500, report=False, report_prompt_tokens=40,
                        searchless=True, uncached=True)  # fmt: skip
    assert last.cache_optional and last.min_searches == 0
    report = call_request(agent, cfg.defaults, ask, input_tokens=500, report=True, report_prompt_tokens=0,
                          searchless=True, uncached=True)  # fmt: skip
    assert report.cache_optional and report.report
