"""Message threads (beta ``message-threads-2026-08-12``): the conversations the API holds between turns.

A request with ``thread: {"type": "create"}`` is an ordinary request whose conversation (the reply
included) is then held under the response ``id``; ``{"type": "continue", "previous_message_id": ID}``
sends only the messages since that response, without ``system`` and ``tools``, and the API rebuilds
the whole request from the thread before it runs (and bills) it as usual. As the API (see
``docs/reference/anthropic-api.md`` §10 and the SDK's ``lib/threads``):

- a thread expires ``thread_expiry_s`` (5 minutes) after its last request, each stored response
  restarting the clock; a continue it cannot serve answers 404 ``thread_not_found``;
- a response can be continued once (400 ``thread_already_continued``), and not while another request
  continues it (400 ``thread_continue_in_flight``);
- the ``model`` a thread was created with stays (400 ``thread_fingerprint_mismatch``);
- a reply whose stream broke is not stored (the thread holds a whole reply or none of it), so its
  ``previous_message_id`` may be continued again;
- the held messages keep no ``cache_control``: each breakpoint was set for the turn that sent it, so
  only the request's own breakpoints (and the thread's ``system`` and ``tools``) count.

:class:`ThreadStore` is pure bookkeeping with an injectable clock; the server calls
:meth:`ThreadStore.begin` before validation and :meth:`ThreadStore.finish` once a reply is whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.simulator.errors import InvalidRequest

THREADS_BETA = "message-threads-2026-08-12"
CREATE_ONLY_FIELDS = ("system", "tools")
"""Fields a continue leaves out: the thread keeps the create request's."""
FIXED_FIELDS = ("model",)
"""Fields that must stay what the thread was created with."""
MAX_THREAD_TURNS = 100_000
"""Held responses past which the oldest expired ones are dropped (memory stays bounded)."""
_ABSENT: Any = object()


class ThreadRejected(InvalidRequest):
    """A thread request the API refuses with an ``error.details.error_code``."""

    def __init__(self, message: str, error_code: str, *, status: int = 400) -> None:
        super().__init__(
            message, status=status, error_type="not_found_error" if status == 404 else "invalid_request_error"
        )
        self.error_code = error_code


@dataclass(slots=True)
class _Thread:
    """What a thread holds besides its messages: the create request's fields, and its clock."""

    fields: dict[str, Any]
    last_used: float


@dataclass(slots=True)
class _Held:
    """One stored response: the whole conversation up to and including it, and whether it was continued."""

    thread: _Thread
    messages: tuple[dict[str, Any], ...]
    continued: bool = False
    in_flight: bool = False


@dataclass(slots=True)
class ThreadTurn:
    """A thread request being served: the body as the API runs it, and where its reply goes."""

    body: dict[str, Any]
    """The request rebuilt whole: no ``thread``; a continue gets its history, ``system`` and ``tools``."""
    sent_tokens_body: dict[str, Any]
    """What the request itself carried, for the validation time it costs."""
    thread: _Thread
    continues: _Held | None = None
    kind: str = "create"
    done: bool = field(default=False)

    @property
    def held_messages(self) -> tuple[dict[str, Any], ...]:
        return self.continues.messages if self.continues is not None else ()


class ThreadStore:
    """Every held thread of one simulator."""

    def __init__(self, clock: Callable[[], float], expiry_s: float) -> None:
        self._clock = clock
        self.expiry_s = expiry_s
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def begin(self, body: dict[str, Any], headers: Mapping[str, str]) -> ThreadTurn | None:
        """The thread turn ``body`` asks for, or None for a request without ``thread``.

        Raises :class:`InvalidRequest` for a malformed ``thread`` (or one sent without the beta header,
        which the API answers as it answers any unknown field) and :class:`ThreadRejected` for a
        continue the API cannot serve.
        """
        if "thread" not in body:
            return None
        if not _has_beta(headers):
            raise InvalidRequest("thread: Extra inputs are not permitted")
        thread = body["thread"]
        if thread is None:
            del body["thread"]
            return None
        kind = _thread_kind(thread)
        rebuilt = {k: v for k, v in body.items() if k != "thread"}
        now = self._clock()
        if kind == "create":
            fields = {name: body.get(name, _ABSENT) for name in (*CREATE_ONLY_FIELDS, *FIXED_FIELDS)}
            return ThreadTurn(rebuilt, rebuilt, _Thread(fields, now))
        previous = _previous_id(thread)
        for name in CREATE_ONLY_FIELDS:
            if name in body:
                raise InvalidRequest(
                    f"{name}: Extra inputs are not permitted on a `thread` continue: the thread keeps the "
                    "`system` and `tools` of the request that created it"
                )
        messages = body.get("messages", [])
        if not isinstance(messages, list):
            raise InvalidRequest("messages: Input should be a valid list")
        held = self._held.get(previous)
        if held is None or now - held.thread.last_used > self.expiry_s:
            raise ThreadRejected(
                f"thread.previous_message_id: no usable thread state was found for '{previous}'; replay the "
                'full conversation with `thread: {"type": "create"}`',
                "thread_not_found",
                status=404,
            )
        if held.continued:
            raise ThreadRejected(
                f"thread.previous_message_id: '{previous}' has already been continued, and each response can "
                "be continued only once; continue from the thread's most recent response id",
                "thread_already_continued",
            )
        if held.in_flight:
            raise ThreadRejected(
                f"thread.previous_message_id: another request is still continuing from '{previous}'",
                "thread_continue_in_flight",
            )
        changed = [name for name in FIXED_FIELDS if body.get(name, _ABSENT) != held.thread.fields.get(name)]
        if changed:
            raise ThreadRejected(
                " and ".join(f"`{name}`" for name in changed)
                + " differs from the value stored with the thread: send the stored value, or replay the full "
                'conversation with `thread: {"type": "create"}` to change it',
                "thread_fingerprint_mismatch",
            )
        for name in CREATE_ONLY_FIELDS:
            value = held.thread.fields.get(name, _ABSENT)
            if value is not _ABSENT:
                rebuilt[name] = value
        rebuilt["messages"] = [*held.messages, *messages]
        held.in_flight = True
        held.thread.last_used = now
        return ThreadTurn(rebuilt, body, held.thread, continues=held, kind="continue")

    def finish(self, turn: ThreadTurn, message_id: str, reply: list[dict[str, Any]]) -> None:
        """The reply was sent whole: hold the conversation under ``message_id``; the continued response
        cannot be continued again."""
        if turn.done:
            return
        turn.done = True
        if turn.continues is not None:
            turn.continues.in_flight = False
            turn.continues.continued = True
        now = self._clock()
        turn.thread.last_used = now
        held = turn.held_messages
        sent = turn.body.get("messages") or []
        conversation = [*held, *(_without_cache_control(m) for m in sent[len(held) :])]
        if conversation and conversation[-1].get("role") == "assistant":  # a paused turn, resumed
            last = conversation[-1]
            conversation[-1] = {"role": "assistant", "content": [*_blocks(last), *reply]}
        else:
            conversation.append({"role": "assistant", "content": list(reply)})
        self._held[message_id] = _Held(turn.thread, tuple(conversation))
        if len(self._held) > MAX_THREAD_TURNS:
            self._purge(now)

    def abandon(self, turn: ThreadTurn) -> None:
        """The reply never arrived whole: nothing is stored, and the continued response is free again."""
        if turn.done:
            return
        turn.done = True
        if turn.continues is not None:
            turn.continues.in_flight = False

    def _purge(self, now: float) -> None:
        self._held = {k: v for k, v in self._held.items() if now - v.thread.last_used <= self.expiry_s}


def _has_beta(headers: Mapping[str, str]) -> bool:
    return THREADS_BETA in (b.strip() for b in headers.get("anthropic-beta", "").split(","))


def _thread_kind(thread: Any) -> str:
    if not isinstance(thread, dict):
        raise InvalidRequest("thread: Input should be a valid dictionary or object to extract fields from")
    kind = thread.get("type")
    if kind not in ("create", "continue"):
        raise InvalidRequest(
            f"thread: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            "'create', 'continue'"
        )
    allowed = {"type"} if kind == "create" else {"type", "previous_message_id"}
    extra = sorted(set(thread) - allowed)
    if extra:
        raise InvalidRequest(f"thread.{kind}.{extra[0]}: Extra inputs are not permitted")
    return str(kind)


def _previous_id(thread: dict[str, Any]) -> str:
    if "previous_message_id" not in thread:
        raise InvalidRequest("thread.continue.previous_message_id: Field required")
    previous = thread["previous_message_id"]
    if not isinstance(previous, str):
        raise InvalidRequest("thread.continue.previous_message_id: Input should be a valid string")
    if not previous:
        raise InvalidRequest("thread.continue.previous_message_id: String should have at least 1 character")
    return previous


def _blocks(message: dict[str, Any]) -> list[Any]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


def _without_cache_control(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without its blocks' breakpoints (a tool's free-form input is left as it is)."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    blocks = [
        {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b for b in content
    ]
    return {**message, "content": blocks}
