"""The official TypeScript SDK (through node) driving the simulator: ``node/scenarios.mjs``.

Needs node and ``npm ci --prefix tests/core/simulator/conformance/node`` (CI does both); skipped with
that reason otherwise. Each scenario is reported by the script and asserted here one by one.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from core.simulator import SimulatorSettings
from tests.core.simulator.conftest import StartSimulator

NODE_DIR = Path(__file__).parent / "node"
SCENARIOS = (
    "web_search_streamed_and_not",
    "pause_turn_continuation",
    "forced_client_tool_and_its_result",
    "structured_output",
    "count_tokens",
    "rate_limit_with_retry_after",
    "mid_stream_error",
    "invalid_requests",
)


def _skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "@anthropic-ai" / "sdk").is_dir():
        return f"the TypeScript SDK is not installed: npm ci --prefix {NODE_DIR}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


@pytest.fixture
async def results(start_simulator: StartSimulator) -> dict[str, str]:
    sim = await start_simulator(SimulatorSettings(seed=3, pause_turn_probability=0.0, retry_after_s=0.2))
    return await node_scenarios("scenarios.mjs", sim.base_url, expected=SCENARIOS)


async def node_scenarios(script: str, *args: str, expected: tuple[str, ...]) -> dict[str, str]:
    """Run ``script`` of the conformance suite's node folder; it reports each scenario's outcome."""
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(NODE_DIR / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    reported: dict[str, str] = json.loads(out)
    assert sorted(reported) == sorted(expected)
    return reported


def assert_all_ok(results: dict[str, str]) -> None:
    failed = {name: outcome for name, outcome in results.items() if outcome != "ok"}
    assert not failed, "\n\n".join(f"{name}: {outcome}" for name, outcome in failed.items())


async def test_every_scenario_passes_through_the_typescript_sdk(results: dict[str, str]) -> None:
    assert_all_ok(results)
