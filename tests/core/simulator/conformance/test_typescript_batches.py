"""The official TypeScript SDK's Message Batches calls driving the simulator: ``node/batches.mjs``.

create, retrieve (polled until ended), list with paging, results of every type (succeeded and
errored; canceled after a cancel, on a second simulator whose batches take a minute; expired on a
third whose batches expire before they end), delete, and invalid batches. Needs node and the SDK
(``npm ci --prefix tests/core/simulator/conformance/node``); skipped with that reason otherwise.
"""

from __future__ import annotations

import pytest

from core.simulator import SimulatorSettings
from tests.core.simulator.conformance.test_typescript_sdk import (
    _skip_reason,
    assert_all_ok,
    node_scenarios,
)
from tests.core.simulator.conftest import StartSimulator

SCENARIOS = (
    "create_retrieve_results",
    "list_with_paging",
    "cancel_then_canceled_results",
    "expired_results",
    "delete_only_once_ended",
    "invalid_batches",
)

SETTINGS = SimulatorSettings(seed=3, pause_turn_probability=0.0)
pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


async def test_the_typescript_sdk_batch_calls_pass(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SETTINGS.model_copy(update={"batch_processing_s": 1.0}))
    slow = await start_simulator(SETTINGS.model_copy(update={"batch_processing_s": 60.0}))
    expiring = await start_simulator(
        SETTINGS.model_copy(update={"batch_processing_s": 60.0, "batch_expiry_s": 0.5})
    )
    results = await node_scenarios(
        "batches.mjs", sim.base_url, slow.base_url, expiring.base_url, expected=SCENARIOS
    )
    assert_all_ok(results)
    assert sim.state.batches.submitted["a"] == 1 and expiring.state.batches.submitted["e1"] == 1
