"""Checks of the ``messages`` array the way the real API makes them.

The API merges consecutive messages of one role before it checks a conversation, so an error names the
merged message and the block's position in it (``messages.0.content.1`` for the second block of two
user messages in a row, as in ``tests/fixtures/anthropic-recorded/400-invalid-request.json``). What a
client may legitimately change in content it sends back is tolerated: omitted optional fields
(``caller``), whitespace-only text blocks dropped, ``citations`` absent, empty or ``null``.
Encrypted fields must be intact and sealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.simulator import crypto
from core.simulator.errors import InvalidRequest
from core.simulator.tokens import message_blocks

BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "search_result",
    "thinking",
    "redacted_thinking",
    "tool_use",
    "tool_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
    "compaction",
)
_USER_ONLY = ("tool_result", "image", "document", "search_result", "container_upload")
_ASSISTANT_ONLY = (
    "tool_use",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "thinking",
    "redacted_thinking",
)


@dataclass(frozen=True, slots=True)
class Turn:
    """Consecutive messages of one role, merged as the API does before checking them."""

    role: str
    blocks: list[dict[str, Any]]
    first_message: int


def merged_turns(messages: list[dict[str, Any]]) -> list[Turn]:
    turns: list[Turn] = []
    for index, message in enumerate(messages):
        blocks = message_blocks(message)
        if turns and turns[-1].role == message["role"]:
            turns[-1].blocks.extend(blocks)
        else:
            turns.append(Turn(message["role"], list(blocks), index))
    return turns


def check_messages(messages: list[Any]) -> None:
    """Shapes, roles, block types and text of every message; then the conversation as a whole."""
    for i, message in enumerate(messages):
        _check_message(i, message, final=i == len(messages) - 1)
    if messages[0].get("role") != "user":
        raise InvalidRequest('messages.0.role: the first message must use the "user" role')
    turns = merged_turns(messages)
    _check_final_whitespace(turns[-1])
    _check_tool_pairs(turns)


def _check_message(i: int, message: Any, *, final: bool) -> None:
    if not isinstance(message, dict):
        raise InvalidRequest(f"messages.{i}: Input should be a valid dictionary")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    extra = sorted(set(message) - {"role", "content"})
    if extra:
        raise InvalidRequest(f"messages.{i}.{extra[0]}: Extra inputs are not permitted")
    content = message.get("content")
    if not isinstance(content, (str, list)):
        raise InvalidRequest(f"messages.{i}.content: Field required")
    if not content and not (final and role == "assistant"):
        raise InvalidRequest(
            f"messages.{i}: all messages must have non-empty content except for the optional final "
            "assistant message"
        )
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    for j, block in enumerate(blocks):
        _check_block(f"messages.{i}.content.{j}", block, role)


def _check_block(where: str, block: Any, role: str) -> None:
    if not isinstance(block, dict):
        raise InvalidRequest(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        expected = ", ".join(f"'{t}'" for t in BLOCK_TYPES)
        raise InvalidRequest(
            f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            f"{expected}"
        )
    if kind in (_USER_ONLY if role == "assistant" else _ASSISTANT_ONLY):
        raise InvalidRequest(f"{where}: `{kind}` blocks are not allowed in `{role}` messages")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.text: Field required")
        if not text:
            raise InvalidRequest("messages: text content blocks must be non-empty")
        if role == "user" and not text.strip():
            raise InvalidRequest("messages: text content blocks must contain non-whitespace text")
        _check_citations(where, block.get("citations"))
    elif kind in ("tool_use", "server_tool_use"):
        for key in ("id", "name"):
            if not isinstance(block.get(key), str) or not block.get(key):
                raise InvalidRequest(f"{where}.{kind}.{key}: Field required")
        if not isinstance(block.get("input"), dict):
            raise InvalidRequest(f"{where}.{kind}.input: Input should be a valid dictionary")
    elif kind in ("tool_result", "web_search_tool_result"):
        if not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequest(f"{where}.{kind}.tool_use_id: Field required")
        if kind == "web_search_tool_result":
            _check_results(where, block.get("content"))


def _check_citations(where: str, citations: Any) -> None:
    """``null``, absent or empty citations are all fine; a web citation must carry its sealed index."""
    if citations is None:
        return
    if not isinstance(citations, list):
        raise InvalidRequest(f"{where}.citations: Input should be a valid list")
    for k, cite in enumerate(citations):
        if (
            isinstance(cite, dict)
            and cite.get("type") == "web_search_result_location"
            and crypto.unseal(cite.get("encrypted_index")) is None
        ):
            raise InvalidRequest(
                f"{where}.citations.{k}.encrypted_index: invalid encrypted index; citations must be passed "
                "back exactly as received"
            )


def _check_results(where: str, content: Any) -> None:
    if isinstance(content, dict):  # a web_search_tool_result_error
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: Input should be a valid list")
    for k, result in enumerate(content):
        if not isinstance(result, dict) or crypto.unseal(result.get("encrypted_content")) is None:
            raise InvalidRequest(
                f"{where}.content.{k}.encrypted_content: invalid encrypted content; web search results "
                "must be passed back exactly as received"
            )


def _check_final_whitespace(last: Turn) -> None:
    """A final assistant message (prefill) cannot end with whitespace; a paused turn ends with a tool."""
    if last.role != "assistant" or not last.blocks:
        return
    final = last.blocks[-1]
    if final.get("type") == "text" and str(final.get("text", "")) != str(final.get("text", "")).rstrip():
        raise InvalidRequest("messages: final assistant content cannot end with trailing whitespace")


def _check_tool_pairs(turns: list[Turn]) -> None:
    """Every client ``tool_use`` answered in the next message, every ``tool_result`` answering one."""
    for index, turn in enumerate(turns):
        if turn.role == "assistant":
            asked = [str(b["id"]) for b in turn.blocks if b.get("type") == "tool_use"]
            following = turns[index + 1] if index + 1 < len(turns) else None
            answered = {
                b.get("tool_use_id")
                for b in (following.blocks if following else [])
                if b.get("type") == "tool_result"
            }
            missing = [i for i in asked if i not in answered]
            if missing:
                raise InvalidRequest(
                    f"messages.{turn.first_message}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
        else:
            previous = turns[index - 1] if index > 0 else None
            asked_ids = {
                b.get("id") for b in (previous.blocks if previous else []) if b.get("type") == "tool_use"
            }
            for j, block in enumerate(turn.blocks):
                if block.get("type") == "tool_result" and block.get("tool_use_id") not in asked_ids:
                    raise InvalidRequest(
                        f"messages.{index}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )


def pending_search(messages: list[dict[str, Any]], server_tools: set[str]) -> dict[str, Any] | None:
    """The trailing dangling ``server_tool_use`` of a paused turn; other dangling ones are errors.

    A continuation may come back merged with earlier assistant content or as its own message, so a
    search is answered by a result anywhere after it.
    """
    last = len(messages) - 1
    pending: dict[str, Any] | None = None
    assistant = [(i, message_blocks(m)) for i, m in enumerate(messages) if m.get("role") == "assistant"]
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
            name = str(block.get("name", "web_search"))
            if i != last or j != len(blocks) - 1:
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: `server_tool_use` block with id `{block.get('id')}` was "
                    f"found without a corresponding `{name}_tool_result` block"
                )
            if name not in server_tools:
                raise InvalidRequest(
                    f"messages.{i}.content.{j}: `server_tool_use` block with id `{block.get('id')}` is "
                    f"waiting for a result, but no `{name}` tool was provided"
                )
            pending = block
    return pending
