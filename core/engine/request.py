"""The next request of an agent, built from its conversation, its plan and its budget grant: pure.

Nothing here sends, waits or reads the clock: :func:`request_params` is what a call would ask
for, :func:`search_ask` what that asks of the ledger, :func:`call_request` the reservation asked
for, and :func:`granted` the request as the grant allows it. The turn loop
(:mod:`core.engine.session`) runs them around the ledger; tests call them on plain values.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.budget.ledger import REPORT_CACHE_WRITE, CacheWrite, CallRequest
from core.budget.sizing import REPORT_OUTPUT_FLOOR, RESEARCH_OUTPUT_FLOOR
from core.config.model import AgentDefaults, ResolvedAgent, WebSearchSettings


@dataclass(frozen=True, slots=True)
class Turn:
    """Where the conversation stands, as the next request needs it (read from the session's state)."""

    messages: Sequence[dict[str, Any]]
    searches: int  # searches the agent has run so far
    tools: list[dict[str, Any]] | None  # the user turn's tool, once its first call chose it
    writing_report: bool


@dataclass(frozen=True, slots=True)
class SearchAsk:
    """What a request asks of the search budget."""

    tools: list[dict[str, Any]]  # the turn's search tool, or none
    wanted: int  # searches asked for (``max_uses``, no more than the agent has left)
    restricted: list[dict[str, Any]]  # no search asked, but the conversation holds searches: the
    # tool must still be defined (with ``tool_choice: none``, under which none can run)


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def writing_report(report_from: int | None, plan_length: int) -> bool:
    """In the report turn (a one-turn plan's only turn is research as well)."""
    return report_from is not None and (plan_length > 1 or report_from > 0)


def cache_write(defaults: AgentDefaults, *, report: bool) -> CacheWrite:
    """How a call writes the cache: at the configured TTL, or not at all when caching is off or
    for a report (:data:`core.budget.ledger.REPORT_CACHE_WRITE`); its breakpoints and its
    reservation both follow this."""
    caching = defaults.caching
    if report:
        return REPORT_CACHE_WRITE
    return caching.ttl if caching.enabled else "none"


def request_params(agent: ResolvedAgent, defaults: AgentDefaults, turn: Turn) -> dict[str, Any]:
    """The request for the next call, before the ledger's grant (see :func:`granted`)."""
    ttl = cache_write(defaults, report=turn.writing_report)
    cache_control: dict[str, Any] = {"type": "ephemeral"}
    if ttl == "1h":
        cache_control["ttl"] = "1h"
    # The API refuses an empty text block (400), so an empty system prompt sends no block.
    prompt = defaults.system_prompt
    system: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt else []
    messages = wire_messages(turn.messages)
    if ttl != "none" and system:
        system[0]["cache_control"] = cache_control
        messages = with_breakpoints(messages, cache_control)
    params: dict[str, Any] = {
        "model": agent.model,
        "max_tokens": agent.max_tokens,
        "system": system,
        "messages": messages,
    }
    if not defaults.system_prompt.strip():
        del params["system"]  # the API rejects an empty text block: no system prompt at all
    tools = turn.tools
    if tools is None:
        wanted = searches_wanted(agent, defaults, turn)
        tools = [search_tool(defaults.web_search, wanted)] if wanted else []
    if tools:
        params["tools"] = tools
    return params


def searches_wanted(agent: ResolvedAgent, defaults: AgentDefaults, turn: Turn) -> int:
    """The search allowance a new research turn asks for: ``max_uses`` (its default when the
    config gives none), no more than the agent has left; none for a report."""
    if turn.writing_report:
        return 0  # the report turn sends no search allowance: a search cap never blocks it
    wanted = defaults.web_search.per_request
    if agent.max_searches is not None:
        wanted = min(wanted, agent.max_searches - turn.searches)
    return max(0, wanted)


def search_tool(search: WebSearchSettings, max_uses: int) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": search.version, "name": "web_search", "max_uses": max(1, max_uses)}
    if search.allowed_domains:
        tool["allowed_domains"] = list(search.allowed_domains)
    if search.blocked_domains:
        tool["blocked_domains"] = list(search.blocked_domains)
    if search.user_location is not None:
        tool["user_location"] = search.user_location.model_dump(exclude_none=True)
    if search.version != "web_search_20250305":
        tool["allowed_callers"] = ["direct"]
    return tool


def search_ask(
    params: dict[str, Any], agent: ResolvedAgent, defaults: AgentDefaults, turn: Turn
) -> SearchAsk:
    """The search allowance ``params`` asks for, no more than the agent has left."""
    tools: list[dict[str, Any]] = params.get("tools", [])
    wanted = int(tools[0].get("max_uses") or 0) if tools else 0
    if agent.max_searches is not None:
        wanted = min(wanted, agent.max_searches - turn.searches)
    restricted = [] if tools or not holds_searches(turn.messages) else [search_tool(defaults.web_search, 1)]
    return SearchAsk(tools=tools, wanted=max(0, wanted), restricted=restricted)


def call_request(
    agent: ResolvedAgent,
    defaults: AgentDefaults,
    ask: SearchAsk,
    *,
    input_tokens: int,
    report: bool,
    report_prompt_tokens: int,
    report_growth: tuple[int, ...] = (),
    searchless: bool = False,
    uncached: bool = False,
) -> CallRequest:
    """The reservation a call asks for: its worst case, and (for research) the report it must
    still leave room for. Near a cap the ledger may grant less (:mod:`core.budget.sizing`): down
    to one search and a short answer for research, a short report for the report, then the same
    without cache breakpoints (priced at the plain input price: :func:`granted` sends none).

    Both last resorts are the caller's to allow, and it allows them only to the last agent
    running, whose leftover nobody else can use (:class:`core.engine.session.AgentSession`):

    - ``uncached``: the call may be granted without its cache breakpoints when it does not fit
      with them. It then pays the plain price for a prompt it might have read from the cache at
      a tenth of it, so it is no saving, only a smaller worst case.
    - ``searchless``: when not even one search fits, a research turn may go with none. Allowed
      once in a row, after the agent has searched, never for a ``pause_turn`` continuation (a
      paused turn is resent with its tool): turns that cannot search one after another would
      spend the agent's plan without research, and a resume with a raised cap would find none
      left (why research otherwise keeps one search)."""
    return CallRequest(
        agent_id=agent.id,
        layer=agent.layer,
        model=agent.priced_model,
        input_tokens=input_tokens,
        max_tokens=agent.max_tokens,
        max_searches=ask.wanted,
        min_searches=0 if searchless and not report else min(1, ask.wanted),
        agent_search_cap=agent.max_searches,
        cache_write=cache_write(defaults, report=report),
        report_input_tokens=None if report else input_tokens + report_prompt_tokens,
        report_growth=report_growth,
        report=report,
        purpose="report" if report else "turn",
        min_max_tokens=REPORT_OUTPUT_FLOOR if report else RESEARCH_OUTPUT_FLOOR,
        min_report_tokens=REPORT_OUTPUT_FLOOR,
        cache_optional=uncached,
    )


def granted(
    params: dict[str, Any],
    ask: SearchAsk,
    searches: int,
    max_tokens: int | None = None,
    *,
    cached: bool = True,
) -> dict[str, Any]:
    """``params`` as a grant of ``searches`` (and ``max_tokens``) allows: exactly what was granted,
    since the reservation is the worst case of that request only; a call granted no search sends
    no tool, or, when the conversation holds searches, the tool under ``tool_choice: none``; a
    call granted without the cache (``cached`` false) sends no breakpoint, so it neither writes
    nor reads the cache and its input is billed at the plain price it was reserved at."""
    params = dict(params) if cached else without_breakpoints(params)
    if max_tokens is not None:
        params["max_tokens"] = min(int(params["max_tokens"]), max_tokens)
    params.pop("tool_choice", None)
    if searches and ask.tools:
        params["tools"] = [{**ask.tools[0], "max_uses": searches}]
    elif ask.tools or ask.restricted:
        params["tools"] = [{**(ask.tools or ask.restricted)[0], "max_uses": 1}]
        params["tool_choice"] = {"type": "none"}
    else:
        params.pop("tools", None)
    return params


def holds_searches(messages: Sequence[dict[str, Any]]) -> bool:
    return any(
        block.get("type") == "server_tool_use"
        for message in messages
        if message["role"] == "assistant"
        for block in message["content"]
    )


def wire_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as the API wants it: a paused turn and its continuations are one message.

    The history is stored append-only (a continuation's content as its own entry) so each
    checkpoint writes only what is new; the wire form joins consecutive assistant entries, which
    is exactly "the paused content, unchanged, followed by what came after it".
    """
    merged: list[dict[str, Any]] = []
    for message in messages:
        if merged and message["role"] == "assistant" and merged[-1]["role"] == "assistant":
            merged[-1] = {"role": "assistant", "content": [*merged[-1]["content"], *message["content"]]}
        else:
            merged.append(message)
    for index, message in enumerate(merged[:-1]):
        if message["role"] == "assistant":
            merged[index] = _without_dangling_searches(message)
    return merged


def _without_dangling_searches(message: dict[str, Any]) -> dict[str, Any]:
    """A paused turn that was not continued (a cap stopped it) ends with a search that never ran;
    followed by a new user turn it is invalid, so the wire form leaves it out."""
    blocks = message["content"]
    answered = {b.get("tool_use_id") for b in blocks if str(b.get("type", "")).endswith("_tool_result")}
    kept = [b for b in blocks if b.get("type") != "server_tool_use" or b.get("id") in answered]
    if len(kept) == len(blocks):
        return message
    return {"role": "assistant", "content": kept or [{"type": "text", "text": "(search not run)"}]}


def with_breakpoints(messages: list[dict[str, Any]], cache_control: dict[str, Any]) -> list[dict[str, Any]]:
    """Cache breakpoints on the last two user messages, so each call reads the previous prefix.

    Only user blocks are marked: assistant content is resent exactly as received. With the
    system breakpoint that makes three, under the API's limit of four.
    """
    user_indexes = [i for i, m in enumerate(messages) if m["role"] == "user"][-2:]
    if not user_indexes:
        return messages
    marked = list(messages)
    for index in user_indexes:
        message = copy.copy(marked[index])
        blocks = [dict(b) for b in message["content"]]
        blocks[-1]["cache_control"] = cache_control
        message["content"] = blocks
        marked[index] = message
    return marked


def without_breakpoints(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with no ``cache_control`` anywhere (top level, tools, system and
    message blocks); the blocks of ``params`` are left as they were."""
    params = {k: v for k, v in params.items() if k != "cache_control"}
    for name in ("tools", "system"):
        if isinstance(params.get(name), list):
            params[name] = [_unmarked(block) for block in params[name]]
    params["messages"] = [
        {**m, "content": [_unmarked(b) for b in m["content"]]} if isinstance(m.get("content"), list) else m
        for m in params["messages"]
    ]
    return params


def _unmarked(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block
