"""The engine handles real recorded API answers, replayed byte for byte from a loopback server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.control import AgentStatus
from core.events import Event, RetryScheduled, SearchIssued, SearchResultsReceived, TurnCompleted
from core.runner import start_run
from tests.core import programs

FIXTURES = Path(__file__).parents[2] / "fixtures" / "anthropic-recorded"  # see its README


def replies_from_recording(name: str) -> list[tuple[int, dict[str, str], bytes]]:
    exchanges = json.loads((FIXTURES / name).read_text())
    replies = []
    for exchange in exchanges:
        response = exchange["response"]
        body = response["body"]
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {
            k: v for k, v in response["headers"].items() if k.lower() not in ("content-length", "connection")
        }
        replies.append((response["status_code"], headers, raw))
    return replies


@pytest.fixture
async def replay() -> AsyncIterator[Any]:
    """A server answering POST /v1/messages with the queued replies, in order."""
    queue: list[tuple[int, dict[str, str], bytes]] = []

    async def messages(request: web.Request) -> web.Response:
        await request.read()
        status, headers, body = queue.pop(0)
        return web.Response(status=status, headers=headers, body=body)

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    class Replay:
        base_url = f"http://127.0.0.1:{port}"
        replies = queue

    yield Replay
    await runner.cleanup()


async def run_one_turn(tmp_path: Path, base_url: str) -> tuple[Any, list[Event]]:
    data = programs.program(
        [programs.agent("solo")],
        max_turns=1,
        execution={"retry": {"base_delay_s": 0.01, "max_delay_s": 0.05}},
    )
    orchestrator = await start_run(
        programs.write(tmp_path, data), tmp_path / "runs", simulate=True, base_url=base_url
    )
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    await orchestrator.run()
    return orchestrator, events


async def test_two_recorded_429s_are_retried_then_the_recorded_stream_completes(
    tmp_path: Path, replay: Any
) -> None:
    replay.replies.extend(replies_from_recording("two-429s-then-stream.json"))
    orchestrator, events = await run_one_turn(tmp_path, replay.base_url)
    retries = [e for e in events if isinstance(e, RetryScheduled)]
    assert [(r.error_kind, r.status_code) for r in retries] == [("rate_limit", 429)] * 2
    assert orchestrator.agent_status("solo") is AgentStatus.COMPLETED
    [turn] = [e for e in events if isinstance(e, TurnCompleted)]
    assert turn.stop_reason == "end_turn" and turn.usage.input_tokens == 135 and turn.cost_usd > 0


async def test_a_recorded_search_then_refusal_stream_ends_the_agent_as_refused(
    tmp_path: Path, replay: Any
) -> None:
    sse = (FIXTURES / "web-search-stream-synthetic.sse").read_bytes()
    if not sse.endswith(b"\n\n"):
        sse += b"\n\n"  # the SDK's fixture omits the final blank line (see its README)
    replay.replies.append((200, {"content-type": "text/event-stream"}, sse))
    orchestrator, events = await run_one_turn(tmp_path, replay.base_url)
    assert orchestrator.agent_status("solo") is AgentStatus.REFUSED
    assert any(isinstance(e, SearchIssued) and e.query for e in events)
    assert any(isinstance(e, SearchResultsReceived) for e in events)
    [turn] = [e for e in events if isinstance(e, TurnCompleted)]
    assert turn.stop_reason == "refusal" and turn.usage.output_tokens > 0
