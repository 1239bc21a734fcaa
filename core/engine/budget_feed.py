"""The meter's feed: the ledger's state published as soon as a reservation is made.

A reservation is news for the meter (``$… reserved``), but the ledger's settled-call events come
only when a call ends, seconds into a layer whose first calls are streaming. Publishing on every
reservation would cost a snapshot per call, and a layer of many agents reserves in one burst; so a
reservation only asks for an update, and the updates asked for in one turn of the event loop are
one ``budget_updated`` event (per API call at most, never per token).
"""

from __future__ import annotations

import asyncio

from core.budget.ledger import BudgetLedger
from core.events import EventBus


class BudgetFeed:
    """Publishes ``ledger.to_event`` once per event-loop turn in which :meth:`changed` was called."""

    def __init__(self, ledger: BudgetLedger, bus: EventBus, run_id: str) -> None:
        self._ledger = ledger
        self._bus = bus
        self._run_id = run_id
        self._due: asyncio.Handle | None = None
        self._closed = False

    def changed(self) -> None:
        """The ledger changed: publish its state soon (cheap: one scheduled callback at most)."""
        if self._due is None and not self._closed:
            self._due = asyncio.get_running_loop().call_soon(self._publish)

    def _publish(self) -> None:
        self._due = None
        if not self._closed:
            self._bus.publish(self._ledger.to_event(self._run_id))

    def close(self) -> None:
        """No update after this (the run's last events are being written)."""
        self._closed = True
        if self._due is not None:
            self._due.cancel()
            self._due = None
