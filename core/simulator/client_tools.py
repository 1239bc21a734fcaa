"""Client tools: when a turn calls them, with what input, and structured (JSON) answers.

``tool_choice`` is honoured as the API does: ``tool`` calls the named tool, ``any`` calls one of the
tools, ``none`` calls none, and ``auto`` (the default) calls the tool that best matches the prompt
unless the last user message already brings ``tool_result``s (then the turn answers in text) or a
web search tool is there to research with instead. Several tools are called in parallel only when
more than one matches and ``disable_parallel_tool_use`` is not set. Inputs are generated from each
tool's ``input_schema``, so they validate.
"""

from __future__ import annotations

import random
import re
from typing import Any

from core.simulator.schema_values import generate
from core.simulator.tokens import message_blocks
from core.simulator.validation import ParsedRequest

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def _match(tool: dict[str, Any], prompt: set[str]) -> int:
    name = str(tool.get("name", "")).replace("_", " ").replace("-", " ")
    return len(_words(f"{name} {tool.get('description', '')}") & prompt)


def answers_tool_results(request: ParsedRequest) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of the last user message (what this turn answers from)."""
    last = request.messages[-1]
    if last.get("role") != "user":
        return []
    return [b for b in message_blocks(last) if b.get("type") == "tool_result"]


def plan_calls(request: ParsedRequest, rng: random.Random, terms: list[str]) -> list[dict[str, Any]]:
    """The ``tool_use`` blocks the turn emits (empty when it answers in text)."""
    tools = request.client_tools
    choice = request.tool_choice or {"type": "auto"}
    kind = choice.get("type")
    if not tools or kind == "none":
        return []
    prompt = _words(request.last_user_text)
    ranked = sorted(tools, key=lambda t: -_match(t, prompt))
    if kind == "tool":
        chosen = [next(t for t in tools if t.get("name") == choice.get("name"))]
    elif kind == "any":
        chosen = ranked[:1]
    else:
        if answers_tool_results(request) or (request.web_tool is not None and _match(ranked[0], prompt) == 0):
            return []
        chosen = ranked[:1]
    parallel = kind != "tool" and not choice.get("disable_parallel_tool_use") and len(ranked) > 1
    if parallel and _match(ranked[1], prompt) > 0 and _match(ranked[0], prompt) > 0:
        chosen = ranked[:2]
    return [
        {
            "type": "tool_use",
            "id": "toolu_01" + "".join(rng.choice("abcdefghijkLMNOPQRSTUVWXYZ0123456789") for _ in range(22)),
            "name": str(tool["name"]),
            "input": generate(tool.get("input_schema") or {"type": "object"}, rng, terms),
            "caller": {"type": "direct"},
        }
        for tool in chosen
    ]


def output_schema(request: ParsedRequest) -> dict[str, Any] | None:
    """The JSON Schema a structured-output request wants its text to follow, if any."""
    body = request.body
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    fmt = fmt or body.get("output_format")
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None
