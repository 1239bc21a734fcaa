"""Request validation: the 4xx answers the real API gives, with API-like messages.

``parse_request`` turns a JSON body into a ``ParsedRequest`` the responder can trust, or raises
``InvalidRequest`` whose status, type and message mirror the API's (field path first, then the problem).
The conversation itself is checked by ``conversation``; ``check_headers`` covers ``anthropic-version``
and ``anthropic-beta``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.simulator.conversation import check_messages, pending_search
from core.simulator.errors import InvalidRequest
from core.simulator.models import model_info
from core.simulator.tokens import message_blocks

__all__ = ["InvalidRequest", "ParsedRequest", "check_headers", "parse_request"]

WEB_SEARCH_TYPES = frozenset({"web_search_20250305", "web_search_20260209", "web_search_20260318"})
WEB_FETCH_TYPES = frozenset(
    {"web_fetch_20250910", "web_fetch_20260209", "web_fetch_20260309", "web_fetch_20260318"}
)
OTHER_TOOL_TYPES = frozenset(
    {
        "memory_20250818",
        "code_execution_20250522",
        "code_execution_20250825",
        "code_execution_20260120",
        "bash_20250124",
        "text_editor_20250124",
        "text_editor_20250429",
        "text_editor_20250728",
    }
)
MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "service_tier",
        "cache_control",
        "container",
        "context_management",
        "mcp_servers",
        "output_config",
        "output_format",
        "inference_geo",
        "speed",
    }
)
COUNT_TOKENS_FIELDS = MESSAGES_FIELDS - {"max_tokens", "stream", "stop_sequences", "metadata", "service_tier"}
_API_VERSION = re.compile(r"^20(2[3-9]|[3-9]\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
"""Dated versions from 2023 on (``2023-06-01``; newer SDKs send newer dates)."""
MAX_CACHE_BREAKPOINTS = 4
_DIRECTIVE = re.compile(r"\[sim:([a-z_]+)(?:=([a-z_]+)(?::(\d+))?)?\]")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(/[^\s*]*\*?)?$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_BETA = re.compile(r"^[a-z0-9][a-z0-9-]*-\d{4}-\d{2}-\d{2}$")


@dataclass(slots=True)
class Directives:
    """Test directives found in the last user message (see the package docstring)."""

    refusal: bool = False
    pause_turn: bool = False
    max_tokens: bool = False
    fault: str | None = None
    fault_attempts: int = 1


@dataclass(slots=True)
class ParsedRequest:
    """A validated Messages request, reduced to what the simulator acts on."""

    body: dict[str, Any]
    model: str
    max_tokens: int
    messages: list[dict[str, Any]]
    web_tool: dict[str, Any] | None
    last_user_text: str
    subject: str = ""
    """What the conversation is about: the question its first user message asks."""
    pending_search: dict[str, Any] | None = None
    """The dangling ``server_tool_use`` of a paused turn being continued."""
    continuation: bool = False
    directives: Directives = field(default_factory=Directives)
    client_tools: list[dict[str, Any]] = field(default_factory=list)
    """Custom tools (name, input_schema) the model may call with ``tool_use``."""
    tool_choice: dict[str, Any] | None = None
    snapshot: str = ""
    """The dated model id responses report."""


def check_headers(headers: Mapping[str, str]) -> None:
    """``anthropic-version`` is required and known; every ``anthropic-beta`` value looks like a beta."""
    version = headers.get("anthropic-version")
    if version is None:
        raise InvalidRequest("anthropic-version: header is required")
    if not _API_VERSION.match(version.strip()):
        raise InvalidRequest(f"anthropic-version: '{version}' is not a valid version")
    betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]
    unknown = [b for b in betas if not _BETA.match(b)]
    if unknown:
        raise InvalidRequest(
            f"Unexpected value(s) `{', '.join(unknown)}` for the `anthropic-beta` header. Please consult our "
            "documentation at docs.claude.com or try again without the header."
        )


def parse_request(body: Any, *, count_tokens: bool = False) -> ParsedRequest:
    """Validate ``body`` like ``POST /v1/messages`` (or ``count_tokens``, which needs no max_tokens)."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    allowed = COUNT_TOKENS_FIELDS if count_tokens else MESSAGES_FIELDS
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidRequest(f"{extra[0]}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required")
    max_tokens = body.get("max_tokens", 0)
    if not count_tokens:
        if "max_tokens" not in body:
            raise InvalidRequest("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise InvalidRequest("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Field required")
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    _check_sampling(body)
    _check_system(body.get("system"))
    _check_misc(body)
    web_tool, client_tools, server_tools = _check_tools(body.get("tools"))
    tool_choice = _check_tool_choice(body.get("tool_choice"), body.get("tools"), client_tools)
    check_messages(messages)
    _check_cache_breakpoints(body)
    info = model_info(model)
    if info is None:
        raise InvalidRequest(f"model: {model}", status=404, error_type="not_found_error")
    if not count_tokens and max_tokens > info.max_output_tokens:
        raise InvalidRequest(
            f"max_tokens: {max_tokens} > {info.max_output_tokens}, which is the maximum allowed number of "
            f"output tokens for {info.snapshot}"
        )
    _check_thinking(body.get("thinking"), int(max_tokens), count_tokens)
    pending = pending_search(messages, server_tools)
    text = last_user_text(messages)
    return ParsedRequest(
        body=body,
        model=model,
        max_tokens=int(max_tokens),
        messages=messages,
        web_tool=web_tool,
        last_user_text=text,
        subject=conversation_subject(messages),
        pending_search=pending,
        continuation=messages[-1].get("role") == "assistant",
        directives=parse_directives(text),
        client_tools=client_tools,
        tool_choice=tool_choice,
        snapshot=info.snapshot,
    )


def parse_directives(text: str) -> Directives:
    directives = Directives()
    for name, value, count in _DIRECTIVE.findall(text):
        if name in ("refusal", "pause_turn", "max_tokens"):
            setattr(directives, name, True)
        elif name == "fault" and value:
            directives.fault = value
            directives.fault_attempts = int(count) if count else 1
    return directives


def conversation_subject(messages: list[dict[str, Any]]) -> str:
    """The line of the first user message that asks a question, else its opening.

    Later prompts ("go deeper", "now write your report") say little about the subject, so the
    synthetic web and prose follow the conversation's opening question instead.
    """
    first = next((m for m in messages if m.get("role") == "user"), None)
    if first is None:
        return ""
    text = " ".join(str(b.get("text", "")) for b in message_blocks(first) if b.get("type") == "text")
    for line in text.splitlines():
        if "?" in line:
            return re.sub(r"^\s*[A-Za-z][\w ]{0,20}:\s*", "", line)
    return text[:300]


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (what the turn is about)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(
                str(b.get("text", "")) for b in message_blocks(message) if b.get("type") == "text"
            )
    return ""


def _number(body: dict[str, Any], key: str, low: float, high: float | None) -> None:
    value = body.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{key}: Input should be a valid number")
    if value < low:
        raise InvalidRequest(f"{key}: Input should be greater than or equal to {low:g}")
    if high is not None and value > high:
        raise InvalidRequest(f"{key}: Input should be less than or equal to {high:g}")


def _check_sampling(body: dict[str, Any]) -> None:
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise InvalidRequest("top_k: Input should be a valid integer")
    _number(body, "top_k", 0, None)
    stops = body.get("stop_sequences")
    if stops is None:
        return
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InvalidRequest("stop_sequences: Input should be a valid list of strings")
    if any(not s.strip() for s in stops):
        raise InvalidRequest("stop_sequences: each stop sequence must contain non-whitespace")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a valid string or a list of text blocks")
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"system.{j}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise InvalidRequest("system: text content blocks must be non-empty")


def _check_misc(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean")
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata: Input should be a valid dictionary")
        extra = sorted(set(metadata) - {"user_id"})
        if extra:
            raise InvalidRequest(f"metadata.{extra[0]}: Extra inputs are not permitted")
        user_id = metadata.get("user_id")
        if user_id is not None and (not isinstance(user_id, str) or len(user_id) > 256):
            raise InvalidRequest("metadata.user_id: String should have at most 256 characters")
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise InvalidRequest("service_tier: Input should be 'auto' or 'standard_only'")


def _check_thinking(thinking: Any, max_tokens: int, count_tokens: bool) -> None:
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise InvalidRequest(
            f"thinking: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'"
        )
    if kind != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise InvalidRequest("thinking.enabled.budget_tokens: Field required")
    if budget < 1024:
        raise InvalidRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if not count_tokens and budget >= max_tokens:
        raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")


def _check_tools(tools: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]], set[str]]:
    """The web search tool, the client tools and the names of the server tools."""
    if tools is None:
        return None, [], set()
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    web_tool: dict[str, Any] | None = None
    client: list[dict[str, Any]] = []
    server: set[str] = set()
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: Input should be a valid dictionary")
        kind = tool.get("type")
        if kind is not None and not isinstance(kind, str):
            raise InvalidRequest(f"tools.{i}.type: Input should be a valid string")
        if kind in WEB_SEARCH_TYPES:
            _check_web_search(i, tool)
            web_tool = tool
            server.add("web_search")
        elif kind in WEB_FETCH_TYPES:
            server.add("web_fetch")
        elif kind in (None, "custom"):
            _check_custom(i, tool)
            client.append(tool)
        elif kind not in OTHER_TOOL_TYPES:
            expected = ", ".join(f"'{t}'" for t in sorted(WEB_SEARCH_TYPES | WEB_FETCH_TYPES | {"custom"}))
            raise InvalidRequest(
                f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                f"{expected}"
            )
        name = str(tool.get("name"))
        if name in names:
            raise InvalidRequest("tools: Tool names must be unique.")
        names.add(name)
    return web_tool, client, server


def _check_custom(i: int, tool: dict[str, Any]) -> None:
    name = tool.get("name")
    if not name:
        raise InvalidRequest(f"tools.{i}.custom.name: Field required")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise InvalidRequest(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    schema = tool.get("input_schema")
    if schema is None:
        raise InvalidRequest(f"tools.{i}.custom.input_schema: Field required")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise InvalidRequest(f"tools.{i}.custom.input_schema.type: Input should be 'object'")


def _check_tool_choice(choice: Any, tools: Any, client: list[dict[str, Any]]) -> dict[str, Any] | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'"
        )
    if not tools and kind != "none":
        raise InvalidRequest("tool_choice: tool_choice may only be specified while providing tools.")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest(f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice.tool.name: Field required")
        if name not in {str(t.get("name")) for t in tools or [] if isinstance(t, dict)}:
            raise InvalidRequest(f"tool_choice.tool.name: Tool '{name}' not found in provided tools")
    return choice


def _check_web_search(i: int, tool: dict[str, Any]) -> None:
    kind = tool["type"]
    if tool.get("name") != "web_search":
        raise InvalidRequest(f"tools.{i}.{kind}.name: Input should be 'web_search'")
    allowed, blocked = tool.get("allowed_domains"), tool.get("blocked_domains")
    if allowed is not None and blocked is not None:
        raise InvalidRequest(f"tools.{i}.{kind}: cannot specify both allowed_domains and blocked_domains")
    for key, domains in (("allowed_domains", allowed), ("blocked_domains", blocked)):
        if domains is None:
            continue
        if not isinstance(domains, list):
            raise InvalidRequest(f"tools.{i}.{kind}.{key}: Input should be a valid list")
        for domain in domains:
            if not isinstance(domain, str) or not _DOMAIN.match(domain):
                raise InvalidRequest(
                    f"tools.{i}.{kind}.{key}: invalid domain {domain!r}: give a bare domain without "
                    "scheme; `*` is only allowed in the path"
                )
    max_uses = tool.get("max_uses")
    if max_uses is not None and (isinstance(max_uses, bool) or not isinstance(max_uses, int) or max_uses < 1):
        raise InvalidRequest(f"tools.{i}.{kind}.max_uses: Input should be greater than or equal to 1")
    callers = tool.get("allowed_callers")
    if callers is not None and not isinstance(callers, list):
        raise InvalidRequest(f"tools.{i}.{kind}.allowed_callers: Input should be a valid list")


def count_cache_breakpoints(body: dict[str, Any]) -> int:
    """``cache_control`` markers on tools, system and message blocks, plus the request-level one."""
    count = 1 if isinstance(body.get("cache_control"), dict) else 0
    for group in _cacheable_groups(body):
        count += sum(
            1 for block in group if isinstance(block, dict) and isinstance(block.get("cache_control"), dict)
        )
    return count


def _cacheable_groups(body: dict[str, Any]) -> list[list[Any]]:
    system = body.get("system")
    groups: list[list[Any]] = [body.get("tools") or [], system if isinstance(system, list) else []]
    return groups + [message_blocks(m) for m in body.get("messages") or [] if isinstance(m, dict)]


def _check_cache_breakpoints(body: dict[str, Any]) -> None:
    found = count_cache_breakpoints(body)
    if found > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )
    top = body.get("cache_control")
    if top is not None and (not isinstance(top, dict) or top.get("type") != "ephemeral"):
        raise InvalidRequest("cache_control.type: Input should be 'ephemeral'")
    markers: list[Any] = [top] + [
        b.get("cache_control") for g in _cacheable_groups(body) for b in g if isinstance(b, dict)
    ]
    for marker in markers:
        if isinstance(marker, dict) and marker.get("ttl", "5m") not in ("5m", "1h"):
            raise InvalidRequest(
                f"cache_control.ttl: Input should be '5m' or '1h', got {marker.get('ttl')!r}"
            )
