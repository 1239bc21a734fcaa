"""The meter sees a reservation as it is made, not when the first call of a layer settles."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable
from core.config.model import BudgetSettings
from core.engine.budget_feed import BudgetFeed
from core.events import BudgetUpdated, Event, EventBus, TextStreamed, TurnCompleted
from core.runner import start_run
from tests.core import programs


async def test_the_reservations_of_one_loop_turn_are_one_update_and_none_after_close() -> None:
    ledger = BudgetLedger(BudgetSettings(), PriceTable.default(), n_layers=1)
    bus, seen = EventBus(), []
    bus.listen(seen.append)
    feed = BudgetFeed(ledger, bus, "r")
    ledger.on_reserve = feed.changed
    for i in range(50):
        ledger.reserve(agent_id=f"a{i}", layer=1, model="claude-sonnet-5", input_tokens=1_000,
                       max_tokens=1_000, max_searches=1)  # fmt: skip
    assert seen == []  # nothing per reservation: the update is scheduled
    await asyncio.sleep(0)
    (update,) = seen
    assert isinstance(update, BudgetUpdated) and update.reserved_usd == ledger.reserved_usd > 0

    ledger.reserve(
        agent_id="late", layer=1, model="claude-sonnet-5", input_tokens=1, max_tokens=1, max_searches=0
    )
    feed.close()
    await asyncio.sleep(0)
    assert len(seen) == 1


async def test_a_layers_reservations_reach_the_meter_before_its_first_token(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent(f"a{i}") for i in range(4)], max_turns=1, simulator={"tokens_per_second": 2000}
    )
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    events: list[Event] = []
    orchestrator.bus.listen(events.append)
    await orchestrator.run()
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextStreamed))
    first_turn = next(i for i, e in enumerate(events) if isinstance(e, TurnCompleted))
    reserved = [i for i, e in enumerate(events) if isinstance(e, BudgetUpdated) and e.reserved_usd > 0]
    assert reserved and reserved[0] < first_text < first_turn
    before = [i for i in reserved if i < first_turn]
    assert len(before) < 4 + 1, "the four agents' first reservations are coalesced, not one event each"
