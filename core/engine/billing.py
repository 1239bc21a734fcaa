"""The budget of one API call across its attempts: each attempt is reserved, and charged if it fails.

One reservation for all of a call's attempts would let retries spend past a cap: an attempt that
failed mid-stream may have been billed, and the next one would run on room the first already
used. So each attempt runs on a reservation of its own: a failed attempt closes its reservation
with the charge of :meth:`BudgetLedger.charge_failed` (synchronously, in the ``except`` that sees
it fail, so a kill or a stop is charged too and the cancellation still propagates), and the next
attempt reserves its worst case again before it starts. When that no longer fits, the ledger's
:class:`BudgetExhausted` ends the call like any budget stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.api.attempt import AttemptProgress, Outcome
from core.api.failure import outcome_of
from core.budget.charges import Charge
from core.budget.ledger import BudgetLedger, Reservation
from core.usage import TokenUsage

T = TypeVar("T")

ChargeListener = Callable[[Charge, float, Outcome, AttemptProgress], None]


class AttemptBudget:
    """The reservations of one call's attempts; :meth:`close` in a ``finally`` releases what is left."""

    def __init__(
        self,
        ledger: BudgetLedger,
        first: Reservation,
        reserve: Callable[[], Awaitable[Reservation]],
        on_charge: ChargeListener,
    ) -> None:
        self._ledger = ledger
        self._reserve = reserve
        self._on_charge = on_charge
        self.reservation: Reservation | None = first
        self.progress = AttemptProgress()
        self.released = False  # the last attempt failed and was charged nothing (billed nothing)

    async def ready(self, attempt: int) -> None:
        """Before each attempt: a retry reserves its worst case again (may wait, or stop on a cap)."""
        if self.reservation is None:
            self.reservation = await self._reserve()

    async def run(self, call: Callable[[AttemptProgress], Awaitable[T]], progress: AttemptProgress) -> T:
        """One attempt on the current reservation, observed in ``progress``; if it fails, it is
        charged and the error goes on."""
        reservation = self.reservation
        if reservation is None:
            raise RuntimeError("an attempt started without a reservation")
        self.progress = progress
        try:
            return await call(progress)
        except BaseException as error:
            self.reservation = None
            outcome = outcome_of(error, progress)
            charge, cost = self._ledger.charge_failed(reservation, progress, outcome)
            self.released = charge.basis == "none"
            self._on_charge(charge, cost, outcome, progress)
            raise

    def settle(self, usage: TokenUsage) -> float:
        """The attempt that succeeded: settle its reservation to the usage the API reported."""
        reservation, self.reservation = self.reservation, None
        if reservation is None:
            raise RuntimeError("no reservation to settle")
        return self._ledger.settle(reservation, usage)

    def close(self) -> None:
        """Release a reservation no attempt used (the call was cancelled or stopped between attempts)."""
        if self.reservation is not None:
            self._ledger.release(self.reservation)
            self.reservation = None
