"""Billed and unconfirmed money against a stand-in API of the test's own, not the simulator.

A plain aiohttp server answers ``/v1/messages`` with wire-shaped SSE (a web search, its results,
text, ``message_delta`` with the usage) and cuts the first stream of every agent with an
``event: error`` ``overloaded_error`` right after the search, before any usage is reported, as the
API does when it is overloaded. It records the usage it reported. The shipped program runs against
it through the real client (``ANTHROPIC_BASE_URL``, no simulator): ``summary.json``'s
``billed_usd`` and ``billed_searches`` must be the usage the server reported, to the cent and
exactly, recomputed at hand-written rates; ``unconfirmed_usd`` must lie between what the cut
streams had sent and the requests' own worst case; no cap is crossed by ``cost_usd``; and
``runs``, ``checkpoints`` and ``verify`` tell the two apart too.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from core.cli import main
from core.control import RunStatus
from core.persistence.rundir import RunDir
from core.reports.verify import verify_run
from core.runner import start_run
from tests.core import programs
from tests.core.budget.test_caps_property import RATES, independent_cost

MODEL = "claude-sonnet-5"
SEARCH_INPUT_TOKENS = 10_000  # what one search's results may add to a call (the ledger's bound)


@dataclass
class StandIn:
    """The stand-in API and what it did: the usage each full stream reported, what each cut one sent."""

    base_url: str = ""
    reported: list[dict[str, Any]] = field(default_factory=list)
    cut: list[dict[str, Any]] = field(default_factory=list)  # {"sent": usage, "worst": dollars}
    conversations: dict[str, int] = field(default_factory=dict)


def sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def send(response: web.StreamResponse, kind: str, **data: Any) -> None:
    """One SSE event of ``kind``, its data an object of that ``type``."""
    await response.write(sse(kind, {"type": kind, **data}))


def max_uses(body: dict[str, Any]) -> int:
    for tool in body.get("tools") or []:
        if str(tool.get("type", "")).startswith("web_search"):
            return int(tool.get("max_uses") or 0) if tool.get("max_uses") is not None else 5
    return 0


def brief_of(body: dict[str, Any]) -> str:
    """The first user message's text: one agent's conversation (its cache markers move, it does not)."""
    content = body["messages"][0]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def worst_usd(body: dict[str, Any], raw: bytes) -> float:
    """An upper bound of what the request can be billed, from the request alone: the prompt (at most
    its bytes) read once per search iteration, the output and each search's results re-read, at the
    dearest input rate (a 1-hour cache write), ``max_tokens`` of output, every search allowed."""
    s, m, p = max_uses(body), int(body["max_tokens"]), len(raw)
    billed_input = (s + 1) * p + s * m + SEARCH_INPUT_TOKENS * s * (s + 1) // 2
    return independent_cost(
        MODEL, {"cache_write_1h_tokens": billed_input, "output_tokens": m, "web_search_requests": s}
    )


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    state = StandIn()
    ids = itertools.count(1)

    async def messages(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        assert body.get("stream"), "the engine streams every call"
        conversation = brief_of(body)
        seen = state.conversations[conversation] = state.conversations.get(conversation, 0) + 1
        request_id = f"req_standin_{next(ids):04d}"
        searching = max_uses(body) > 0
        prompt = len(raw) // 4
        text = f"Sodium-ion storage grew quickly in 2026 ({request_id}). " * 6
        output = 30 + len(text.encode()) // 4
        usage = {
            "input_tokens": prompt, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": output, "server_tool_use": {"web_search_requests": int(searching)},
        }  # fmt: skip
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "request-id": request_id,
                "cache-control": "no-cache",
            }
        )
        await response.prepare(request)
        start = {**usage, "output_tokens": 1}
        del start["server_tool_use"]
        message = {
            "id": f"msg_{request_id}", "type": "message", "role": "assistant", "model": body["model"],
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": start,
        }  # fmt: skip
        await send(response, "message_start", message=message)
        index = 0
        if searching:
            tool_id = f"srvtoolu_{request_id}"
            block = {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {}}
            query = json.dumps({"query": "sodium-ion storage growth 2026"})
            await send(response, "content_block_start", index=0, content_block=block)
            await send(response, "content_block_delta", index=0,
                       delta={"type": "input_json_delta", "partial_json": query})  # fmt: skip
            await send(response, "content_block_stop", index=0)
            results = [
                {"type": "web_search_result", "title": f"Sodium-ion outlook {n}", "page_age": "May 1, 2026",
                 "url": f"https://standin.example/{request_id}/{n}", "encrypted_content": "EqQBCioIBhgCIiQ"}
                for n in (1, 2)
            ]  # fmt: skip
            block = {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": results}
            await send(response, "content_block_start", index=1, content_block=block)
            await send(response, "content_block_stop", index=1)
            index = 2
        if seen == 1:  # the first stream of every agent: cut after the search, before any usage
            state.cut.append({
                "request_id": request_id,
                "sent": {"input_tokens": prompt, "output_tokens": 1, "web_search_requests": int(searching)},
                "worst": worst_usd(body, raw),
            })  # fmt: skip
            await send(response, "error", error={"type": "overloaded_error", "message": "Overloaded"})
            await response.write_eof()
            return response
        await send(response, "content_block_start", index=index, content_block={"type": "text", "text": ""})
        await send(response, "content_block_delta", index=index, delta={"type": "text_delta", "text": text})
        await send(response, "content_block_stop", index=index)
        await send(response, "message_delta", usage=usage,
                   delta={"stop_reason": "end_turn", "stop_sequence": None})  # fmt: skip
        await send(response, "message_stop")
        state.reported.append({"request_id": request_id, "usage": usage})
        await response.write_eof()
        return response

    async def count_tokens(request: web.Request) -> web.Response:
        return web.json_response({"input_tokens": len(await request.read()) // 4})

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def flat(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "web_search_requests": usage.get("server_tool_use", {}).get("web_search_requests", 0),
    }


async def run_shipped(tmp_path: Path, stand_in: StandIn, cap: float | None) -> dict[str, Any]:
    data = yaml.safe_load(programs.DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["execution_settings"]["retry"] = {"base_delay_s": 0.01, "max_delay_s": 0.05}
    if cap is not None:
        data["execution_settings"]["budget"]["max_cost_usd"] = cap
    config = programs.write(tmp_path / ("capped" if cap else "full"), data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=False)
    outcome = await orchestrator.run()
    assert outcome.status in (RunStatus.COMPLETED, RunStatus.BUDGET_EXHAUSTED), outcome
    summary: dict[str, Any] = json.loads((outcome.run_dir / "summary.json").read_text())
    summary["_run_dir"] = outcome.run_dir
    return summary


def check(summary: dict[str, Any], stand_in: StandIn, cap: float | None) -> None:
    assert {a["model"] for a in summary["agents"]} == {MODEL} and MODEL in RATES
    billed = sum(independent_cost(MODEL, flat(r["usage"])) for r in stand_in.reported)
    assert round(summary["billed_usd"], 2) == round(billed, 2)  # to the cent
    assert summary["billed_usd"] == pytest.approx(billed, abs=1e-5)  # (summary.json rounds its figures)
    assert summary["billed_searches"] == sum(
        flat(r["usage"])["web_search_requests"] for r in stand_in.reported
    )

    assert summary["unconfirmed_attempts"] == len(stand_in.cut) > 0
    assert summary["unconfirmed_searches"] == sum(c["sent"]["web_search_requests"] for c in stand_in.cut)
    sent = sum(independent_cost(MODEL, c["sent"]) for c in stand_in.cut)
    worst = sum(c["worst"] for c in stand_in.cut)
    assert sent <= summary["unconfirmed_usd"] <= worst, (sent, summary["unconfirmed_usd"], worst)

    assert summary["cost_usd"] == pytest.approx(summary["billed_usd"] + summary["unconfirmed_usd"], abs=1e-9)
    assert summary["searches"] == summary["billed_searches"] + summary["unconfirmed_searches"]
    if cap is not None:
        assert summary["cost_usd"] <= cap
    for agent in summary["agents"]:  # one cut stream per agent that started
        if agent["turns"]:
            assert agent["unconfirmed_attempts"] == 1, agent
            assert agent["cost_usd"] == pytest.approx(
                agent["billed_usd"] + agent["unconfirmed_usd"], abs=1e-9
            )
    assert verify_run(RunDir(summary["_run_dir"])).problems == []


async def test_billed_is_what_the_stand_in_reported_and_unconfirmed_is_the_cut_streams_bound(
    tmp_path: Path, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", stand_in.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-standin-0000")
    full = await run_shipped(tmp_path, stand_in, None)
    check(full, stand_in, None)
    assert full["unconfirmed_attempts"] == len(full["agents"])  # every agent met one cut stream

    run_dir: Path = full["_run_dir"]
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(run_dir.parent)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(run_dir.name)]
    assert f"{full['billed_usd']:.4f}" in line and f"{full['unconfirmed_usd']:.4f}" in line
    assert main(["verify", run_dir.name, "--runs-dir", str(run_dir.parent)]) == 0
    said = capsys.readouterr().out
    assert (
        f"${full['billed_usd']:.4f} billed" in said and f"${full['unconfirmed_usd']:.4f} unconfirmed" in said
    )
    assert main(["checkpoints", run_dir.name, "--runs-dir", str(run_dir.parent)]) == 0
    assert "unconf." in capsys.readouterr().out

    # A binding cap: the cut streams' bounds count against it, and billed stays exact.
    stand_in.reported.clear()
    stand_in.cut.clear()
    stand_in.conversations.clear()
    cap = round(full["cost_usd"] / 2, 4)
    capped = await run_shipped(tmp_path, stand_in, cap)
    check(capped, stand_in, cap)
