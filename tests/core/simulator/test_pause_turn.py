"""``pause_turn``: a dangling ``server_tool_use``, and continuations accepted or rejected like the API."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest
from anthropic import AsyncAnthropic, BadRequestError
from anthropic.types import Message, ServerToolUseBlock, WebSearchToolResultBlock

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.conftest import WEB_SEARCH, StartSimulator, request, sdk

PROMPT = "Research geothermal heating in northern Europe [sim:pause_turn]"


async def paused(client: AsyncAnthropic) -> tuple[dict[str, Any], Message]:
    params = request(PROMPT)
    async with client.messages.stream(**params) as stream:
        message = await stream.get_final_message()
    assert message.stop_reason == "pause_turn"
    return params, message


def continuation(params: dict[str, Any], message: Message) -> dict[str, Any]:
    """The same request plus the paused content appended unchanged as the last assistant message."""
    return {**params, "messages": [*params["messages"], message.to_param()]}


def editable_continuation(params: dict[str, Any], message: Message) -> dict[str, Any]:
    """A continuation whose assistant content is plain dicts, for tests that alter it."""
    content = [block.model_dump(exclude_none=True) for block in message.content]
    return {**params, "messages": [*params["messages"], {"role": "assistant", "content": content}]}


async def test_a_paused_turn_ends_with_a_dangling_server_tool_use(client: AsyncAnthropic) -> None:
    _, message = await paused(client)

    last = message.content[-1]
    assert isinstance(last, ServerToolUseBlock)
    answered = {b.tool_use_id for b in message.content if isinstance(b, WebSearchToolResultBlock)}
    assert last.id not in answered


async def test_the_continuation_first_runs_the_pending_search(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    pending = message.content[-1]
    assert isinstance(pending, ServerToolUseBlock)

    async with client.messages.stream(**continuation(params, message)) as stream:
        resumed = await stream.get_final_message()

    first = resumed.content[0]
    assert isinstance(first, WebSearchToolResultBlock) and first.tool_use_id == pending.id
    assert resumed.stop_reason == "end_turn"
    assert (
        resumed.usage.server_tool_use is not None and resumed.usage.server_tool_use.web_search_requests >= 1
    )


async def test_the_continuation_is_accepted_as_plain_dicts(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    resumed = await client.messages.create(**editable_continuation(params, message))

    assert resumed.stop_reason in ("end_turn", "pause_turn")


async def test_tampered_encrypted_content_is_rejected(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    tampered = editable_continuation(params, message)
    for block in tampered["messages"][-1]["content"]:
        if block["type"] == "web_search_tool_result":
            text = block["content"][0]["encrypted_content"]
            block["content"][0]["encrypted_content"] = (
                text[:20] + ("A" if text[20] != "A" else "B") + text[21:]
            )
            break
    else:
        pytest.skip("the pause came before any result")

    with pytest.raises(BadRequestError, match="encrypted_content"):
        await client.messages.create(**tampered)


def _drop_caller(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in b.items() if k != "caller"} for b in blocks]


def _drop_blank_text(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if not (b["type"] == "text" and not b["text"].strip())]


def _empty_citations(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Uncited text gets ``citations: []`` (or ``None``), as some clients' conversions write it."""
    return [
        {**b, "citations": [] if i % 2 else None} if b["type"] == "text" and not b.get("citations") else b
        for i, b in enumerate(blocks)
    ]


TOLERATED = {"caller": _drop_caller, "blank text": _drop_blank_text, "citations": _empty_citations}


@pytest.mark.parametrize(
    "changes",
    [c for n in range(1, 4) for c in itertools.combinations(TOLERATED, n)],
    ids=lambda c: "+".join(c),
)
async def test_a_continuation_with_what_clients_change_is_accepted(
    client: AsyncAnthropic, changes: tuple[str, ...]
) -> None:
    """What the schema lets a client change (LangChain, LiteLLM, pydantic-ai do) is not an alteration."""
    params, message = await paused(client)
    follow_up = editable_continuation(params, message)
    blocks = follow_up["messages"][-1]["content"]
    for change in changes:
        blocks = TOLERATED[change](blocks)
    follow_up["messages"][-1]["content"] = blocks

    resumed = await client.messages.create(**follow_up)
    first = resumed.content[0]
    assert isinstance(first, WebSearchToolResultBlock) and first.tool_use_id == blocks[-1]["id"]


async def test_edited_paused_text_is_accepted_like_the_api_which_keeps_no_copy(
    client: AsyncAnthropic,
) -> None:
    params, message = await paused(client)
    follow_up = editable_continuation(params, message)
    text_block = next(b for b in follow_up["messages"][-1]["content"] if b["type"] == "text")
    text_block["text"] += " (edited)"

    resumed = await client.messages.create(**follow_up)
    assert isinstance(resumed.content[0], WebSearchToolResultBlock)


async def test_a_tampered_citation_in_the_paused_content_is_rejected(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    follow_up = editable_continuation(params, message)
    cited = next(
        b for b in follow_up["messages"][-1]["content"] if b["type"] == "text" and b.get("citations")
    )
    cited["citations"][0]["encrypted_index"] = cited["citations"][0]["encrypted_index"][:-4] + "AAAA"

    with pytest.raises(BadRequestError, match="encrypted_index"):
        await client.messages.create(**follow_up)


async def test_a_paused_search_that_is_not_last_is_rejected(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    follow_up = editable_continuation(params, message)
    follow_up["messages"][-1]["content"].append({"type": "text", "text": "Trailing text."})

    with pytest.raises(BadRequestError, match="without a corresponding `web_search_tool_result`"):
        await client.messages.create(**follow_up)


async def test_a_continuation_without_the_tool_is_rejected(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    follow_up = continuation(params, message)
    del follow_up["tools"]

    with pytest.raises(BadRequestError, match="but no `web_search` tool was provided"):
        await client.messages.create(**follow_up)


async def test_a_dangling_search_followed_by_a_user_turn_is_rejected(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    follow_up = continuation(params, message)
    follow_up["messages"].append({"role": "user", "content": "continue"})

    with pytest.raises(BadRequestError, match="web_search_tool_result"):
        await client.messages.create(**follow_up)


async def test_recorded_bodies_show_the_paused_content_resent(start_simulator: Any) -> None:
    sim: Simulator = await start_simulator(record_bodies=True)
    client = AsyncAnthropic(base_url=sim.base_url, api_key="test", max_retries=0)
    params, message = await paused(client)
    await client.messages.create(**continuation(params, message))

    first, second = sim.stats.bodies
    assert second["messages"][:-1] == first["messages"]
    assert second["messages"][-1]["content"][-1]["id"] == message.content[-1].id  # type: ignore[union-attr]


async def test_the_conversation_goes_on_after_a_continuation(client: AsyncAnthropic) -> None:
    params, message = await paused(client)
    follow_up = continuation(params, message)
    resumed = await client.messages.create(**follow_up)
    next_turn = {
        **params,
        "messages": [*follow_up["messages"], resumed.to_param(), {"role": "user", "content": "Go on."}],
    }

    assert (await client.messages.create(**next_turn)).stop_reason in ("end_turn", "pause_turn")


async def test_a_continuation_merged_into_earlier_assistant_content_is_accepted(
    client: AsyncAnthropic,
) -> None:
    params, message = await paused(client)
    merged = editable_continuation(params, message)
    merged["messages"][-1]["content"].insert(0, {"type": "text", "text": "Earlier assistant text."})

    assert (await client.messages.create(**merged)).content


async def test_over_two_hundred_turns_none_pauses_without_a_search(start_simulator: StartSimulator) -> None:
    """Turns pause only at the server-loop limit, after searches; directives never conflict."""
    stops: Counter[str] = Counter()
    prompts = [
        "Research offshore wind in the North Sea",
        "Research lithium prices [sim:pause_turn]",
        "Research tidal power [sim:max_tokens]",
        "Research small modular reactors [sim:pause_turn] [sim:max_tokens]",
        "Research heat pumps [sim:refusal] [sim:pause_turn]",
    ]

    async def turn(client: AsyncAnthropic, limit: int, i: int) -> None:
        tools = [{**WEB_SEARCH, "max_uses": 2 + i % 5} if i % 3 == 0 else WEB_SEARCH]
        params = request(
            f"{prompts[i % len(prompts)]} (case {i})", tools=tools, max_tokens=[400, 4096][i % 2]
        )
        message = await client.messages.create(**params)
        for _ in range(2):  # the turn, then up to one continuation of it
            stops[message.stop_reason or ""] += 1
            assert message.usage.server_tool_use is not None
            searches = message.usage.server_tool_use.web_search_requests
            if "[sim:max_tokens]" in params["messages"][0]["content"]:
                assert message.stop_reason == "max_tokens"
            if message.stop_reason != "pause_turn":
                return
            assert searches == limit >= 1, (searches, limit)
            assert isinstance(message.content[-1], ServerToolUseBlock)
            params = continuation(params, message)
            message = await client.messages.create(**params)

    for seed in range(4):
        settings = SimulatorSettings(seed=seed, pause_turn_probability=0.3, server_loop_limit=1 + seed % 3)
        # Closed after use: an unclosed client collected mid-test can stall another client's requests.
        async with sdk(await start_simulator(settings)) as client, asyncio.TaskGroup() as group:
            for i in range(50):
                group.create_task(turn(client, settings.server_loop_limit, i))

    assert stops.total() >= 200
    assert stops["pause_turn"] >= 20 and stops["end_turn"] >= 20 and stops["max_tokens"] >= 40, stops
