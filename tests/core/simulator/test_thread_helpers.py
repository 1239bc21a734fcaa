"""The official SDK's message-thread helpers against the simulator: ``client.beta.messages.thread(...)``
and ``tool_runner`` (which threads by default): create, continues, an expired thread answered 404 and
replayed, ``thread_already_continued`` answered and replayed.

The helpers came with SDK 2.17 (``anthropic.lib.threads``); on an older SDK (the lowest-versions run
installs 2.12) these tests are skipped, and the newest-versions run holds them.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import anthropic
import pytest

from core.simulator import SimulatorSettings
from core.simulator.threads import THREADS_BETA
from tests.core.simulator.conftest import MODEL, WEB_SEARCH, StartSimulator, sdk
from tests.core.simulator.test_threads import Clock, user

HAS_THREADS = importlib.util.find_spec("anthropic.lib.threads") is not None
pytestmark = pytest.mark.skipif(
    not HAS_THREADS, reason=f"anthropic {anthropic.__version__} has no thread helpers (they came with 2.17)"
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(start_simulator: StartSimulator, clock: Clock) -> Any:
    return await start_simulator(
        SimulatorSettings(pause_turn_probability=0.0), clock=clock, record_bodies=True
    )


def kinds(sim: Any) -> list[tuple[int, str | None]]:
    return [(r.status, r.thread) for r in sim.stats.recent if r.path == "/v1/messages"]


async def test_the_thread_helper_creates_continues_and_replays_an_expired_thread(
    sim: Any, clock: Clock
) -> None:
    async with sdk(sim) as client:
        thread = client.beta.messages.thread(
            model=MODEL, max_tokens=2048, system="You are a research assistant.", tools=[WEB_SEARCH]
        )
        first = await thread.send(user("Research sodium-ion batteries for grid storage"))
        second = await thread.send(user("Go deeper on their costs"))
        third = await thread.send(user("And the outlook to 2030?"))
        assert thread.previous_message_id == third.id
        assert kinds(sim) == [(200, "create"), (200, "continue"), (200, "continue")]
        assert sim.stats.bodies[1]["thread"] == {"type": "continue", "previous_message_id": first.id}
        assert "system" not in sim.stats.bodies[2] and len(sim.stats.bodies[2]["messages"]) == 1

        clock.now += sim.settings.thread_expiry_s + 1
        fourth = await thread.send(user("Now write the report"))
        assert kinds(sim)[3:] == [(404, "continue"), (200, "create")]
        replay = sim.stats.bodies[-1]
        assert replay["system"] and replay["tools"] and len(replay["messages"]) == 7  # the whole conversation
        assert fourth.stop_reason == "end_turn"
        assert [m["role"] for m in thread.messages] == ["user", "assistant"] * 4
        assert second.id != third.id != fourth.id


async def test_the_thread_helper_streams_its_turns(sim: Any) -> None:
    async with sdk(sim) as client:
        thread = client.beta.messages.thread(model=MODEL, max_tokens=1024)
        for prompt in ("Explain tidal power", "And its costs?", "And its risks?"):
            async with thread.stream(user(prompt)) as events:
                reply = await events.get_final_message()
            assert reply.stop_reason == "end_turn"
        assert kinds(sim) == [(200, "create"), (200, "continue"), (200, "continue")]
        assert all(r.stream for r in sim.stats.recent)


async def test_the_thread_helper_replays_a_response_already_continued(sim: Any) -> None:
    async with sdk(sim) as client:
        thread = client.beta.messages.thread(model=MODEL, max_tokens=1024)
        first = await thread.send(user("Explain tidal power"))
        # Someone else continues the helper's latest response first.
        await client.beta.messages.create(
            model=MODEL,
            max_tokens=256,
            messages=[user("A side question")],
            betas=[THREADS_BETA],
            extra_body={"thread": {"type": "continue", "previous_message_id": first.id}},
        )
        second = await thread.send(user("And its costs?"))
        assert kinds(sim) == [(200, "create"), (200, "continue"), (400, "continue"), (200, "create")]
        assert second.stop_reason == "end_turn"
        assert len(sim.stats.bodies[-1]["messages"]) == 3  # replayed whole: the side question is not in it


async def test_the_tool_runner_threads_by_default(sim: Any) -> None:
    calls: list[dict[str, Any]] = []

    @anthropic.beta_async_tool
    async def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        calls.append({"city": city})
        return f"Sunny and 21 C in {city}"

    async with sdk(sim) as client:
        runner = client.beta.messages.tool_runner(
            model=MODEL,
            max_tokens=1024,
            tools=[get_weather],
            messages=[user("What is the weather in Paris? Use the get_weather tool.")],
        )
        replies = [message async for message in runner]
    assert calls and replies[-1].stop_reason == "end_turn"
    assert replies[0].stop_reason == "tool_use"
    assert kinds(sim) == [(200, "create"), (200, "continue")]
    continued = sim.stats.bodies[1]
    assert "tools" not in continued
    assert [b["type"] for b in continued["messages"][0]["content"]] == ["tool_result"]


async def test_the_tool_runner_without_threads_sends_everything(sim: Any) -> None:
    @anthropic.beta_async_tool
    async def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"Sunny in {city}"

    async with sdk(sim) as client:
        runner = client.beta.messages.tool_runner(
            model=MODEL,
            max_tokens=1024,
            tools=[get_weather],
            messages=[user("What is the weather in Paris? Use the get_weather tool.")],
            thread=False,
        )
        replies = [message async for message in runner]
    assert replies[-1].stop_reason == "end_turn"
    assert kinds(sim) == [(200, None), (200, None)]
    assert len(sim.stats.bodies[1]["messages"]) == 3
