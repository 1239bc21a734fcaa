"""The TypeScript SDK's message-thread helpers (``client.beta.messages.thread``, ``toolRunner``, which
threads by default) driving the simulator: ``node/threads.mjs``.

Needs node and ``npm ci --prefix tests/core/simulator/conformance/node``, with an SDK that has the
helpers (``lib/threads``); skipped with the reason otherwise. A second simulator whose threads expire
after a fraction of a second lets the script see an expired thread answered 404 and replayed.
"""

from __future__ import annotations

import pytest

from core.simulator import SimulatorSettings
from tests.core.simulator.conformance.test_typescript_sdk import (
    NODE_DIR,
    _skip_reason,
    assert_all_ok,
    node_scenarios,
)
from tests.core.simulator.conftest import StartSimulator

SCENARIOS = (
    "thread_create_and_continues",
    "thread_expired_is_replayed",
    "thread_already_continued_is_replayed",
    "tool_runner_threads_by_default",
)
EXPIRY_S = 0.5


def _threads_skip_reason() -> str | None:
    reason = _skip_reason()
    if (
        reason is None
        and not (NODE_DIR / "node_modules" / "@anthropic-ai" / "sdk" / "lib" / "threads").is_dir()
    ):
        return "the installed TypeScript SDK has no thread helpers (lib/threads)"
    return reason


pytestmark = pytest.mark.skipif(_threads_skip_reason() is not None, reason=_threads_skip_reason() or "")


async def test_the_typescript_thread_helpers_pass(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SimulatorSettings(seed=3, pause_turn_probability=0.0))
    short = await start_simulator(
        SimulatorSettings(seed=3, pause_turn_probability=0.0, thread_expiry_s=EXPIRY_S)
    )
    results = await node_scenarios(
        "threads.mjs", sim.base_url, short.base_url, str(EXPIRY_S), expected=SCENARIOS
    )
    assert_all_ok(results)
