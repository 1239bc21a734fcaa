"""The simulator's wire output has the shape of the recorded API exchanges (same keys, same framing)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from core.simulator import Simulator
from tests.core.simulator.conftest import request

FIXTURES = Path(__file__).parents[2] / "fixtures" / "anthropic-recorded"  # real recordings: see its README

FRAME = re.compile(r"event: ([a-z_]+)\ndata: (.*)\n\n")
AUTH = {"authorization": "Bearer test", "anthropic-version": "2023-06-01"}


def parse_sse(text: str) -> list[tuple[str, dict[str, Any], str]]:
    """(event name, payload, raw data line) of every frame; the whole text must be frames."""
    frames = [(m.group(1), json.loads(m.group(2)), m.group(2)) for m in FRAME.finditer(text)]
    assert "".join(m.group(0) for m in FRAME.finditer(text)) == text, "stray bytes between frames"
    return frames


def block_keys(blocks: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Keys of each kind of block (text split into cited and uncited), results and citations."""
    keys: dict[str, set[str]] = {}
    for block in blocks:
        kind = block["type"] + ("+citations" if block.get("citations") is not None else "")
        keys.setdefault(kind, set()).update(block)
        if block["type"] == "web_search_tool_result" and isinstance(block["content"], list):
            for hit in block["content"]:
                keys.setdefault("web_search_result", set()).update(hit)
        for citation in block.get("citations") or []:
            keys.setdefault("citation", set()).update(citation)
    return keys


async def post(sim: Simulator, params: dict[str, Any]) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{sim.base_url}/v1/messages", json=params, headers=AUTH)
        await response.read()
        return response


async def test_non_streamed_message_has_the_recorded_keys(sim: Simulator) -> None:
    recorded = json.loads((FIXTURES / "web-search-non-streaming.json").read_text())[0]["response"]["body"]
    response = await post(sim, request())
    ours = json.loads(await response.text())

    assert set(recorded) <= set(ours) <= set(recorded) | {"stop_details"}
    assert set(ours["usage"]) == set(recorded["usage"])
    recorded_keys, our_keys = block_keys(recorded["content"]), block_keys(ours["content"])
    assert set(recorded_keys) <= set(our_keys)
    for kind, keys in recorded_keys.items():
        assert our_keys[kind] == keys, kind


async def test_stream_has_the_recorded_frames_and_block_keys(sim: Simulator) -> None:
    recorded = parse_sse((FIXTURES / "web-search-stream-synthetic.sse").read_text())
    response = await post(sim, request(stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    ours = parse_sse(await response.text())

    for name, payload, _ in ours:
        assert payload["type"] == name
    assert ours[0][0] == "message_start" and ours[-1][0] == "message_stop"
    assert any(name == "ping" for name, _, _ in ours)
    assert any(re.search(r" +}$", raw) for _, _, raw in ours), "no whitespace padding like the real API"

    def starts(frames: list[tuple[str, dict[str, Any], str]]) -> dict[str, set[str]]:
        return block_keys([p["content_block"] for n, p, _ in frames if n == "content_block_start"])

    recorded_start = next(p for n, p, _ in recorded if n == "message_start")["message"]
    our_start = next(p for n, p, _ in ours if n == "message_start")["message"]
    assert set(our_start) == set(recorded_start) and set(our_start["usage"]) == set(recorded_start["usage"])
    recorded_blocks, our_blocks = starts(recorded), starts(ours)
    assert (
        recorded_blocks["server_tool_use"]
        <= our_blocks["server_tool_use"]
        <= {*recorded_blocks["server_tool_use"], "caller"}
    )
    for kind in ("web_search_tool_result", "web_search_result", "text"):
        assert our_blocks[kind] == recorded_blocks[kind], kind


async def test_stream_deltas_follow_the_api_order(sim: Simulator) -> None:
    response = await post(sim, request(stream=True))
    frames = parse_sse(await response.text())
    started: dict[int, dict[str, Any]] = {}
    deltas: dict[int, list[str]] = {}
    for name, payload, _ in frames:
        if name == "content_block_start":
            started[payload["index"]] = payload["content_block"]
        elif name == "content_block_delta":
            deltas.setdefault(payload["index"], []).append(payload["delta"]["type"])
            if payload["delta"]["type"] == "input_json_delta" and len(deltas[payload["index"]]) == 1:
                assert payload["delta"]["partial_json"] == ""

    for index, block in started.items():
        kinds = deltas.get(index, [])
        if block["type"] == "web_search_tool_result":
            assert kinds == [] and block["content"], "results arrive whole in content_block_start"
        elif block["type"] == "server_tool_use":
            assert block["input"] == {} and set(kinds) == {"input_json_delta"}
        elif "citations" in block:
            assert block["citations"] == [] and kinds[0] == "citations_delta"
            assert kinds.index("text_delta") > max(i for i, k in enumerate(kinds) if k == "citations_delta")
    final_delta = [p for n, p, _ in frames if n == "message_delta"][-1]
    assert final_delta["usage"]["server_tool_use"]["web_search_requests"] >= 1
