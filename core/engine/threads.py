"""An agent's message thread: its turns sent as continues of what the API already holds.

With ``message_threads`` on, the API holds the conversation between an agent's calls (beta
``message-threads-2026-08-12``, ``docs/reference/anthropic-api.md`` §10): a call whose conversation
starts with exactly what the thread holds, with the thread's ``system``, ``tools`` and ``model``,
sends only its new messages (none for a ``pause_turn`` continuation) and the previous response's
id. Anything else is sent whole as a new thread: the first call, a changed tool allowance, a
compaction, and every call after a resume or a fork (the thread lives in memory only).

The checkpointed conversation stays the source of truth: :class:`MessageThread` turns the request
the session built from it (exactly what would be sent without threads) into the one to send, so
reservations, bounds and billing are those of the whole request. A continue the API cannot serve
(404 ``thread_not_found``, ``thread_already_continued``, ``thread_continue_in_flight``, a changed
fingerprint) is answered by :meth:`MessageThread.rejected` and sent again whole at once; a request
the API cannot thread at all (``thread_unsupported_request``) stops threading for the agent.
Pure: nothing here sends or reads the clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.api.failure import failure_of
from core.api.transport import CallResult

CREATE_ONLY = ("system", "tools")
"""Fields a continue leaves out (the thread keeps its create request's)."""
FIXED = ("model",)
"""Fields that must stay what the thread was created with."""
REPLAY_CODES = frozenset(
    {
        "thread_not_found",
        "thread_already_continued",
        "thread_continue_in_flight",
        "thread_fingerprint_mismatch",
    }
)
"""``error.details.error_code`` of a continue the API cannot serve: sent again whole, at once."""
UNSUPPORTED_CODE = "thread_unsupported_request"
LOOKBACK_BLOCKS = 20
"""The API reads a cached prefix at most this many blocks before a breakpoint."""


@dataclass(slots=True)
class MessageThread:
    """What the API holds of one agent's conversation, and how the next request is sent."""

    previous_id: str | None = None
    held: list[dict[str, Any]] = field(default_factory=list)  # without cache_control, the reply included
    created_with: dict[str, Any] = field(default_factory=dict)
    off: bool = False  # the API cannot thread this agent's requests
    since_write: int = 0  # blocks the thread holds after its last cache breakpoint
    _sent: dict[str, Any] | None = None  # the request (whole) of the call in flight
    _created: dict[str, Any] | None = None  # the create-only fields a create in flight sends

    def request(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The request to send for ``params`` (the whole request): a continue when the thread holds
        its beginning, else a create."""
        self._sent = dict(params)
        if self.off:
            self._created = None
            return dict(params)
        messages: Sequence[dict[str, Any]] = params["messages"]
        held = len(self.held)
        if (
            self.previous_id is not None
            and len(messages) >= held
            and self._fits_thread(params)
            and self._cache_reads(params, messages[held:])
            and all(_bare(sent) == kept for sent, kept in zip(messages[:held], self.held, strict=True))
        ):
            self._created = None
            body = {k: v for k, v in params.items() if k not in CREATE_ONLY}
            body["messages"] = list(messages[held:])
            body["thread"] = {"type": "continue", "previous_message_id": self.previous_id}
            marker = _marker(params)
            if marker is not None:
                body["cache_control"] = marker  # a breakpoint at its end: where it writes
            return body
        self._created = {k: params.get(k) for k in (*CREATE_ONLY, *FIXED)}
        return {**params, "thread": {"type": "create"}}

    def _cache_reads(self, params: Mapping[str, Any], new: Sequence[dict[str, Any]]) -> bool:
        """Whether a continue still reads the prompt cache the request sent whole would read.

        A continue carries breakpoints only in its new messages (and at its end): the thread's
        earlier ones were for the turns that sent them. So its read must lie within the API's
        lookback of its last breakpoint: a long answer in between (many searches and cited
        passages) is sent whole instead, whose breakpoints on the last two user turns read it.
        """
        return _marker(params) is None or self.since_write + _blocks(new) <= LOOKBACK_BLOCKS

    def _fits_thread(self, params: Mapping[str, Any]) -> bool:
        """Whether the thread's create-only fields serve ``params``: equal, or a request that may
        search nothing (``tool_choice: none``) and defines no tool the thread lacks."""
        created = self.created_with
        if any(params.get(name) != created.get(name) for name in (*FIXED, "system")):
            return False
        tools = params.get("tools")
        if tools == created.get("tools"):
            return True
        if (params.get("tool_choice") or {}).get("type") != "none":
            return False
        names = {str(t.get("name")) for t in created.get("tools") or []}
        return all(str(t.get("name")) in names for t in tools or [])

    def answered(self, message_id: str | None, content: list[dict[str, Any]]) -> None:
        """The call in flight completed with response ``message_id``: the thread holds its whole
        conversation and the reply (a ``pause_turn`` continuation's reply joins the paused turn)."""
        sent, self._sent = self._sent, None
        if self.off or sent is None or message_id is None:
            self.previous_id = None
            return
        if self._created is not None:
            self.created_with = self._created
        messages = sent["messages"]
        held = self.held if self._created is None else []
        conversation = [*held, *(_bare(m) for m in messages[len(held) :])]
        if conversation and conversation[-1]["role"] == "assistant":
            last = conversation[-1]
            conversation[-1] = {"role": "assistant", "content": [*last["content"], *content]}
        else:
            conversation.append({"role": "assistant", "content": list(content)})
        self.held = conversation
        self.previous_id = message_id
        # A continue breaks at its end (top-level cache_control), a whole request at its last marked block.
        sent_after = 0 if self._created is None else _blocks_after_breakpoint(messages)
        self.since_write = sent_after + len(content)

    def rejected(self, error_code: str | None) -> bool:
        """Whether a request refused with ``error_code`` is to be sent again at once (whole); the
        thread is dropped in any case (the API may hold none of it)."""
        was_continue = self._created is None and not self.off
        self.forget()
        if error_code == UNSUPPORTED_CODE and not self.off:
            self.off = True
            return True
        return was_continue and error_code in REPLAY_CODES

    def forget(self) -> None:
        """The next request starts a new thread (a failed call: what the API holds is unknown)."""
        self.previous_id = None
        self.held = []
        self.created_with = {}


def _marker(params: Mapping[str, Any]) -> Any:
    """The request's cache breakpoint marker (its system prompt's), or None when it caches nothing."""
    system = params.get("system")
    first = system[0] if isinstance(system, list) and system else None
    return first.get("cache_control") if isinstance(first, Mapping) else None


def _blocks(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(m["content"]) if isinstance(m["content"], list) else 1 for m in messages)


def _blocks_after_breakpoint(messages: Sequence[Mapping[str, Any]]) -> int:
    """Blocks after the last one that carries ``cache_control`` (all of them when none does)."""
    after = 0
    for message in reversed(messages):
        content = message["content"]
        for block in reversed(content if isinstance(content, list) else [content]):
            if isinstance(block, Mapping) and "cache_control" in block:
                return after
            after += 1
    return after


def _bare(message: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` as the thread holds it: its blocks without ``cache_control`` (each breakpoint was
    for the turn that sent it)."""
    content = message["content"]
    if not isinstance(content, list) or not any("cache_control" in b for b in content):
        return dict(message)
    return {**message, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in content]}


async def send_threaded(
    thread: MessageThread | None,
    params: Mapping[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[CallResult]],
) -> CallResult:
    """One call of ``params`` (the whole request) through ``thread`` (None: sent as it is). A
    continue the API cannot serve is sent again whole at once: an API error is billed nothing, so
    the attempt's reservation covers the replay as it covered the continue."""
    if thread is None:
        return await send(dict(params))
    try:
        result = await send(thread.request(params))
    except Exception as error:
        failure = failure_of(error)
        code = failure.status.error_code if failure is not None and failure.status is not None else None
        if code is None or not code.startswith("thread_") or not thread.rejected(code):
            raise
        result = await send(thread.request(params))
    thread.answered(result.message_id, result.content)
    return result
