"""An agent's message thread: which calls go as continues, what they carry, and what is replayed."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from core.api.transport import CallResult
from core.engine.threads import MessageThread, send_threaded
from core.usage import TokenUsage

SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
MARK = {"type": "ephemeral"}


def user(text: str, *, marked: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if marked:
        block["cache_control"] = MARK
    return {"role": "user", "content": [block]}


def reply(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def params(
    *messages: dict[str, Any], tools: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Research.", "cache_control": MARK}],
        "messages": list(messages),
        "tools": [SEARCH] if tools is None else tools,
    }
    body.update(extra)
    return body


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": reply(text)}


def test_the_first_call_creates_and_the_next_continues_with_only_its_new_messages() -> None:
    thread = MessageThread()
    first = params(user("Brief", marked=True))
    sent = thread.request(first)
    assert sent["thread"] == {"type": "create"} and sent["messages"] == first["messages"]
    thread.answered("msg_1", reply("Findings"))

    second = params(user("Brief"), assistant("Findings"), user("Go deeper", marked=True))
    sent = thread.request(second)
    assert sent["thread"] == {"type": "continue", "previous_message_id": "msg_1"}
    assert sent["messages"] == [user("Go deeper", marked=True)]  # its own breakpoint stays
    assert "system" not in sent and "tools" not in sent
    assert sent["model"] == "claude-sonnet-5" and sent["max_tokens"] == 1024
    assert sent["cache_control"] == MARK  # it writes the cache at its end, as the whole request would
    thread.answered("msg_2", reply("Deeper"))
    assert thread.previous_id == "msg_2" and len(thread.held) == 4


def test_a_pause_turn_continuation_continues_with_no_message() -> None:
    thread = MessageThread()
    thread.request(params(user("Brief")))
    paused = [{"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}]
    thread.answered("msg_1", paused)
    sent = thread.request(params(user("Brief"), {"role": "assistant", "content": paused}))
    assert sent["messages"] == [] and sent["thread"]["previous_message_id"] == "msg_1"
    thread.answered("msg_2", reply("Resumed"))
    # The thread holds the paused turn and its continuation as one assistant message, as the wire does.
    joined = {"role": "assistant", "content": [*paused, *reply("Resumed")]}
    sent = thread.request(params(user("Brief"), joined, user("Next")))
    assert sent["messages"] == [user("Next")] and sent["thread"]["previous_message_id"] == "msg_2"


@pytest.mark.parametrize(
    "changed",
    [
        {"tools": [{**SEARCH, "max_uses": 1}]},  # a smaller grant: the request must carry it
        {"system": [{"type": "text", "text": "Other."}]},
        {"model": "claude-opus-5"},
    ],
)
def test_a_changed_tool_allowance_system_or_model_starts_a_new_thread(changed: dict[str, Any]) -> None:
    thread = MessageThread()
    thread.request(params(user("Brief")))
    thread.answered("msg_1", reply("Findings"))
    sent = thread.request({**params(user("Brief"), assistant("Findings"), user("More")), **changed})
    assert sent["thread"] == {"type": "create"} and len(sent["messages"]) == 3
    assert {k: sent[k] for k in changed} == changed


def test_a_turn_that_may_search_nothing_continues_under_the_threads_tool() -> None:
    thread = MessageThread()
    thread.request(params(user("Brief")))
    thread.answered("msg_1", reply("Findings"))
    report = params(
        user("Brief"),
        assistant("Findings"),
        user("Write the report"),
        tools=[{**SEARCH, "max_uses": 1}],
        tool_choice={"type": "none"},
    )
    sent = thread.request(report)
    assert sent["thread"]["type"] == "continue" and sent["tool_choice"] == {"type": "none"}
    assert "tools" not in sent


def test_a_continue_that_would_miss_the_prompt_cache_is_sent_whole() -> None:
    thread = MessageThread()
    thread.request(params(user("Brief", marked=True)))
    long_answer = reply("passage") * 21  # beyond the API's 20-block lookback from the next breakpoint
    thread.answered("msg_1", long_answer)
    whole = params(user("Brief"), {"role": "assistant", "content": long_answer}, user("More", marked=True))
    assert thread.request(whole)["thread"] == {"type": "create"}
    thread.answered("msg_2", reply("short"))
    after = params(*whole["messages"], assistant("short"), user("Next", marked=True))
    assert thread.request(after)["thread"]["type"] == "continue"
    # Without caching nothing is read: the thread continues whatever the answer's length.
    uncached = MessageThread()
    uncached.request(params(user("Brief"), system=[{"type": "text", "text": "Research."}]))
    uncached.answered("msg_1", long_answer)
    later = params(
        user("Brief"), {"role": "assistant", "content": long_answer}, user("More"),
        system=[{"type": "text", "text": "Research."}],
    )  # fmt: skip
    sent = uncached.request(later)
    assert sent["thread"]["type"] == "continue" and "cache_control" not in sent


def test_a_history_that_differs_from_the_threads_is_sent_whole() -> None:
    thread = MessageThread()
    thread.request(params(user("Brief")))
    thread.answered("msg_1", reply("Findings"))
    compacted = params(user("Brief"), assistant("A summary of the findings"), user("More"))
    assert thread.request(compacted)["thread"] == {"type": "create"}


def test_a_continue_the_api_cannot_serve_is_sent_again_whole() -> None:
    thread = MessageThread()
    thread.request(params(user("Brief")))
    thread.answered("msg_1", reply("Findings"))
    second = params(user("Brief"), assistant("Findings"), user("More"))
    assert thread.request(second)["thread"]["type"] == "continue"
    assert thread.rejected("thread_not_found")
    replay = thread.request(second)
    assert replay["thread"] == {"type": "create"} and replay["messages"] == second["messages"]
    assert replay["system"] and replay["tools"]
    assert not thread.rejected("thread_not_found")  # a create refused is an error like any other


def test_a_request_the_api_cannot_thread_is_sent_without_a_thread_from_then_on() -> None:
    thread = MessageThread()
    thread.request(params(user("Brief")))
    assert thread.rejected("thread_unsupported_request")
    assert "thread" not in thread.request(params(user("Brief")))
    thread.answered("msg_1", reply("Findings"))
    assert "thread" not in thread.request(params(user("Brief"), assistant("Findings"), user("More")))


def _status_error(status: int, code: str) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://sim/v1/messages")
    body = {"type": "error", "error": {"type": "x", "message": "m", "details": {"error_code": code}}}
    response = httpx2.Response(status, json=body, request=request)
    return anthropic.APIStatusError("refused", response=response, body=body)


def _result(message_id: str) -> CallResult:
    return CallResult(reply("ok"), "end_turn", TokenUsage(), "req_1", message_id=message_id)


async def test_send_threaded_replays_a_lost_thread_in_the_same_call() -> None:
    thread = MessageThread()
    sent: list[dict[str, Any]] = []

    async def send(request: dict[str, Any]) -> CallResult:
        sent.append(request)
        if len(sent) == 2:
            raise _status_error(404, "thread_not_found")
        return _result(f"msg_{len(sent)}")

    await send_threaded(thread, params(user("Brief")), send)
    await send_threaded(thread, params(user("Brief"), assistant("ok"), user("More")), send)
    assert [r["thread"]["type"] for r in sent] == ["create", "continue", "create"]
    assert thread.previous_id == "msg_3"


async def test_send_threaded_lets_other_errors_through() -> None:
    thread = MessageThread()

    async def send(request: dict[str, Any]) -> CallResult:
        raise _status_error(429, "rate_limited")

    with pytest.raises(anthropic.APIStatusError):
        await send_threaded(thread, params(user("Brief")), send)


async def test_without_a_thread_the_request_goes_as_built() -> None:
    seen: list[dict[str, Any]] = []

    async def send(request: dict[str, Any]) -> CallResult:
        seen.append(request)
        return _result("msg_1")

    built = params(user("Brief"))
    await send_threaded(None, built, send)
    assert seen == [built]
