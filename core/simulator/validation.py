"""Request validation: the 400s the real API gives, with API-like messages.

``parse_request`` turns a JSON body into a ``ParsedRequest`` the responder can trust, or raises
``InvalidRequest`` whose message mirrors the API's (field path first, then the problem).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.simulator import crypto
from core.simulator.tokens import message_blocks

WEB_SEARCH_TYPES = frozenset({"web_search_20250305", "web_search_20260209", "web_search_20260318"})
WEB_FETCH_TYPES = frozenset(
    {"web_fetch_20250910", "web_fetch_20260209", "web_fetch_20260309", "web_fetch_20260318"}
)
OTHER_TOOL_TYPES = frozenset(
    {
        "custom",
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
MAX_CACHE_BREAKPOINTS = 4
_DIRECTIVE = re.compile(r"\[sim:([a-z_]+)(?:=([a-z_]+)(?::(\d+))?)?\]")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(/[^\s*]*\*?)?$")


class InvalidRequest(Exception):
    """A request the API would answer with 400 ``invalid_request_error``."""


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


def _fail(message: str) -> InvalidRequest:
    return InvalidRequest(message)


def parse_request(body: Any, *, count_tokens: bool = False) -> ParsedRequest:
    """Validate ``body`` like ``POST /v1/messages`` (or ``count_tokens``, which needs no max_tokens)."""
    if not isinstance(body, dict):
        raise _fail("Request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model: Field required")
    max_tokens = body.get("max_tokens", 0)
    if not count_tokens:
        if "max_tokens" not in body:
            raise _fail("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _fail("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _fail("messages: Field required")
    if not messages:
        raise _fail("messages: at least one message is required")
    web_tool = _check_tools(body.get("tools"))
    _check_messages(messages)
    _check_cache_breakpoints(body)
    pending = _pending_search(messages, web_tool)
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


def _check_tools(tools: Any) -> dict[str, Any] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise _fail("tools: Input should be a valid list")
    web_tool: dict[str, Any] | None = None
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _fail(f"tools.{i}: Input should be a valid dictionary")
        kind = tool.get("type")
        if kind in WEB_SEARCH_TYPES:
            _check_web_search(i, tool)
            web_tool = tool
        elif kind in WEB_FETCH_TYPES or kind in OTHER_TOOL_TYPES or (kind is None and "input_schema" in tool):
            if kind in (None, "custom") and not tool.get("name"):
                raise _fail(f"tools.{i}.custom.name: Field required")
        else:
            expected = ", ".join(f"'{t}'" for t in sorted(WEB_SEARCH_TYPES | WEB_FETCH_TYPES | {"custom"}))
            raise _fail(
                f"tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
                f"{expected}"
            )
    return web_tool


def _check_web_search(i: int, tool: dict[str, Any]) -> None:
    kind = tool["type"]
    if tool.get("name") != "web_search":
        raise _fail(f"tools.{i}.{kind}.name: Input should be 'web_search'")
    allowed, blocked = tool.get("allowed_domains"), tool.get("blocked_domains")
    if allowed is not None and blocked is not None:
        raise _fail(f"tools.{i}.{kind}: cannot specify both allowed_domains and blocked_domains")
    for key, domains in (("allowed_domains", allowed), ("blocked_domains", blocked)):
        if domains is None:
            continue
        if not isinstance(domains, list):
            raise _fail(f"tools.{i}.{kind}.{key}: Input should be a valid list")
        for domain in domains:
            if not isinstance(domain, str) or not _DOMAIN.match(domain):
                raise _fail(
                    f"tools.{i}.{kind}.{key}: invalid domain {domain!r}: give a bare domain without "
                    "scheme; `*` is only allowed in the path"
                )
    max_uses = tool.get("max_uses")
    if max_uses is not None and (isinstance(max_uses, bool) or not isinstance(max_uses, int) or max_uses < 1):
        raise _fail(f"tools.{i}.{kind}.max_uses: Input should be greater than or equal to 1")
    callers = tool.get("allowed_callers")
    if callers is not None and not isinstance(callers, list):
        raise _fail(f"tools.{i}.{kind}.allowed_callers: Input should be a valid list")


def _check_messages(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise _fail(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise _fail(f"messages.{i}.content: Field required")
        if isinstance(content, list) and not content and i != len(messages) - 1:
            raise _fail(
                f"messages.{i}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        if message["role"] == "assistant":
            _check_assistant_blocks(i, message_blocks(message))
    if messages[0].get("role") != "user":
        raise _fail('messages.0.role: the first message must use the "user" role')


def _check_assistant_blocks(i: int, blocks: list[dict[str, Any]]) -> None:
    """Every encrypted field must be one this simulator issued, unaltered."""
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "web_search_tool_result" and isinstance(block.get("content"), list):
            for k, result in enumerate(block["content"]):
                if isinstance(result, dict) and crypto.unseal(result.get("encrypted_content")) is None:
                    raise _fail(
                        f"messages.{i}.content.{j}.content.{k}.encrypted_content: invalid encrypted "
                        "content; web search results must be passed back exactly as received"
                    )
        elif kind == "text":
            for k, cite in enumerate(block.get("citations") or []):
                if (
                    isinstance(cite, dict)
                    and cite.get("type") == "web_search_result_location"
                    and crypto.unseal(cite.get("encrypted_index")) is None
                ):
                    raise _fail(
                        f"messages.{i}.content.{j}.citations.{k}.encrypted_index: invalid encrypted "
                        "index; citations must be passed back exactly as received"
                    )


def _pending_search(messages: list[dict[str, Any]], web_tool: dict[str, Any] | None) -> dict[str, Any] | None:
    """The trailing dangling ``server_tool_use`` of a paused turn; other dangling ones are errors."""
    last = len(messages) - 1
    pending: dict[str, Any] | None = None
    assistant = [(i, message_blocks(m)) for i, m in enumerate(messages) if m.get("role") == "assistant"]
    # A continuation may come back as its own assistant message, so results can follow in a later one.
    answered = {
        b.get("tool_use_id")
        for _, blocks in assistant
        for b in blocks
        if str(b.get("type", "")).endswith("_tool_result")
    }
    for i, blocks in assistant:
        for j, block in enumerate(blocks):
            if block.get("type") != "server_tool_use" or block.get("id") in answered:
                continue
            if i != last or j != len(blocks) - 1:
                raise _fail(
                    f"messages.{i}.content.{j}: `server_tool_use` block with id `{block.get('id')}` "
                    "has no corresponding `web_search_tool_result` block"
                )
            name = block.get("name", "web_search")
            if name == "web_search" and web_tool is None:
                raise _fail(
                    f"messages.{i}.content.{j}: the paused turn ends with a `server_tool_use` block "
                    "for `web_search`, but no `web_search` tool was provided"
                )
            pending = block
    return pending


def count_cache_breakpoints(body: dict[str, Any]) -> int:
    """``cache_control`` markers on tools, system and message blocks, plus the request-level one."""
    count = 1 if isinstance(body.get("cache_control"), dict) else 0
    system = body.get("system")
    groups: list[Any] = [body.get("tools") or [], system if isinstance(system, list) else []]
    groups += [message_blocks(m) for m in body.get("messages") or [] if isinstance(m, dict)]
    for group in groups:
        count += sum(
            1 for block in group if isinstance(block, dict) and isinstance(block.get("cache_control"), dict)
        )
    return count


def _check_cache_breakpoints(body: dict[str, Any]) -> None:
    found = count_cache_breakpoints(body)
    if found > MAX_CACHE_BREAKPOINTS:
        raise _fail(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )
    top = body.get("cache_control")
    if top is not None and (not isinstance(top, dict) or top.get("type") != "ephemeral"):
        raise _fail("cache_control.type: Input should be 'ephemeral'")
    for ttl in _ttls(body):
        if ttl not in ("5m", "1h"):
            raise _fail(f"cache_control.ttl: Input should be '5m' or '1h', got {ttl!r}")


def _ttls(body: dict[str, Any]) -> list[Any]:
    markers: list[Any] = [body.get("cache_control")]
    system = body.get("system")
    for group in [body.get("tools") or [], system if isinstance(system, list) else []] + [
        message_blocks(m) for m in body.get("messages") or [] if isinstance(m, dict)
    ]:
        markers += [b.get("cache_control") for b in group if isinstance(b, dict)]
    return [m.get("ttl", "5m") for m in markers if isinstance(m, dict)]
