"""Server-sent event framing of a ``Turn``, shaped like the API's streams.

Frames are ``event: NAME\\ndata: JSON\\n\\n`` with the JSON padded by a few spaces before its closing
brace, as the real API does. Each frame carries the output tokens it represents (for pacing) and
whether a search runs before it (the API pauses there and sends pings).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from core.simulator.responder import Turn
from core.simulator.tokens import count_block, count_text

_CHUNK = re.compile(r"\S*\s*")
_PADS = (0, 3, 1, 10, 5, 0, 14, 2, 7, 0, 11, 4)
"""Spaces before a payload's closing brace, cycled: the real API pads its JSON like this."""
PING = b'event: ping\ndata: {"type": "ping"}\n\n'


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame; ``tokens`` (output) and ``result_tokens``/``searches`` (a search result's input
    and whether it is billed as a search) are what the API has billed once it has sent the frame."""

    data: bytes
    tokens: int = 0
    search_wait: bool = False
    result_tokens: int = 0
    searches: int = 0


class _Encoder:
    def __init__(self, salt: int) -> None:
        self._n = salt

    def __call__(
        self,
        name: str,
        payload: dict[str, Any],
        tokens: int = 0,
        search_wait: bool = False,
        result: dict[str, Any] | None = None,
    ) -> Frame:
        self._n += 1
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        pad = _PADS[self._n % len(_PADS)]
        if pad:
            text = text[:-1] + " " * pad + "}"
        data = f"event: {name}\ndata: {text}\n\n".encode()
        if result is None:
            return Frame(data, tokens, search_wait)
        ran = isinstance(result.get("content"), list)  # an error result is not billed
        return Frame(data, tokens, search_wait, count_block(result) if ran else 0, int(ran))


def text_chunks(text: str, size: int = 24) -> list[str]:
    """Split text at word boundaries into pieces of about ``size`` characters (a few tokens each)."""
    chunks: list[str] = []
    current = ""
    for word in _CHUNK.findall(text):
        if not word:
            continue
        current += word
        if len(current) >= size:
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    return chunks or [text]


def json_chunks(text: str) -> list[str]:
    """``input_json_delta`` pieces: an empty first delta, then a few slices of the JSON."""
    step = max(4, len(text) // 4)
    return ["", *(text[i : i + step] for i in range(0, len(text), step))]


def render(turn: Turn) -> list[Frame]:
    """Every frame of the streamed answer, from ``message_start`` to ``message_stop``."""
    enc = _Encoder(turn.seed)
    start = turn.message()
    start.update(content=[], stop_reason=None, stop_details=None, usage=turn.usage_start)
    frames = [enc("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(turn.blocks):
        final = block.final
        kind = final["type"]
        if kind == "text":
            opening: dict[str, Any] = (
                {"citations": [], "type": "text", "text": ""}
                if "citations" in final
                else {"type": "text", "text": ""}
            )
            frames.append(enc("content_block_start", _start(index, opening), search_wait=block.after_search))
            if index == 0:
                frames.append(Frame(PING))
            for citation in final.get("citations", ()):
                frames.append(
                    enc(
                        "content_block_delta",
                        _delta(index, {"type": "citations_delta", "citation": citation}),
                    )
                )
            for chunk in text_chunks(final["text"]):
                frames.append(
                    enc(
                        "content_block_delta",
                        _delta(index, {"type": "text_delta", "text": chunk}),
                        tokens=count_text(chunk),
                    )
                )
        elif kind in ("server_tool_use", "tool_use"):
            frames.append(
                enc(
                    "content_block_start",
                    _start(index, {**final, "input": {}}),
                    search_wait=block.after_search,
                )
            )
            if index == 0:
                frames.append(Frame(PING))
            raw = json.dumps(final["input"], ensure_ascii=False)
            for chunk in json_chunks(raw):
                frames.append(
                    enc(
                        "content_block_delta",
                        _delta(index, {"type": "input_json_delta", "partial_json": chunk}),
                        tokens=count_text(chunk),
                    )
                )
        else:
            result = final if kind == "web_search_tool_result" else None
            frames.append(
                enc(
                    "content_block_start", _start(index, final), search_wait=block.after_search, result=result
                )
            )
        frames.append(enc("content_block_stop", {"type": "content_block_stop", "index": index}))
    frames.append(
        enc(
            "message_delta",
            {
                "type": "message_delta",
                "delta": _stop(turn),
                "usage": turn.usage_delta,
            },
        )
    )
    frames.append(enc("message_stop", {"type": "message_stop"}))
    return frames


def _stop(turn: Turn) -> dict[str, Any]:
    """The ``message_delta`` delta; ``stop_details`` only when there are some, as in real recordings."""
    delta: dict[str, Any] = {"stop_reason": turn.stop_reason, "stop_sequence": None}
    if turn.stop_details is not None:
        delta["stop_details"] = turn.stop_details
    return delta


def billed_usage(turn: Turn, frames: list[Frame], sent: int) -> dict[str, Any] | None:
    """What the API has billed for a stream cut after its first ``sent`` frames: nothing before
    ``message_start``; the whole usage once ``message_delta`` went out; else the prompt as
    ``message_start`` reported it, the output tokens and the search results sent so far."""
    if sent <= 0:
        return None
    full: dict[str, Any] = turn.message()["usage"]
    if sent >= len(frames) - 1:
        return full
    gone = frames[:sent]
    start = turn.usage_start
    usage = {
        **start,
        "input_tokens": start["input_tokens"] + sum(f.result_tokens for f in gone),
        "output_tokens": sum(f.tokens for f in gone),
    }
    if "server_tool_use" in full:
        usage["server_tool_use"] = {
            "web_search_requests": sum(f.searches for f in gone),
            "web_fetch_requests": 0,
        }
    return usage


def error_frame(error_type: str, message: str) -> bytes:
    """The mid-stream ``event: error`` frame (the SDK raises ``APIStatusError`` with status 200)."""
    payload = json.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return f"event: error\ndata: {payload}\n\n".encode()


def _start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}
