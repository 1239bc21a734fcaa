"""A batch's progress over time: its requests finish one by one over ``batch_processing_s``.

One task per batch runs from creation to the end whether or not anybody polls. Requests finish in a
seeded shuffled order (the API gives results in no particular order), evenly spread over the
processing time; a cancel ends the rest ``canceled`` at once, and what is not done by ``expires_at``
ends ``expired``. The answer itself is ``answer.BatchAnswerer``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from core.simulator.batches.answer import errored
from core.simulator.batches.batch import Batch

Answer = Callable[[dict[str, Any]], dict[str, Any]]
logger = logging.getLogger(__name__)


def finishing_order(batch: Batch, seed: int) -> list[int]:
    """The order the batch's requests finish in: a shuffle drawn from the seed and the batch id."""
    order = list(range(len(batch.requests)))
    random.Random(f"{seed}:{batch.id}").shuffle(order)
    return order


async def process(
    batch: Batch, answer: Answer, *, processing_s: float, seed: int, clock: Callable[[], float]
) -> None:
    """Answer ``batch``'s requests over ``processing_s`` seconds, then end it."""
    order = finishing_order(batch, seed)
    for done, index in enumerate(order):
        due = batch.created_at + processing_s * (done + 1) / len(order)
        await _until(min(due, batch.expires_at), batch, clock)
        if batch.cancel_asked.is_set() or due > batch.expires_at:
            rest = "canceled" if batch.cancel_asked.is_set() else "expired"
            for left in order[done:]:
                batch.finish(batch.requests[left].custom_id, {"type": rest})
            break
        request = batch.requests[index]
        batch.finish(request.custom_id, _answered(answer, request.params, batch.id))
        await asyncio.sleep(0)  # a batch whose time has passed answers all at once: let others run between
    batch.end(clock())


def _answered(answer: Answer, params: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """The request's result; a failure of the simulator itself is the API's ``api_error``, logged."""
    try:
        return answer(params)
    except Exception:
        logger.exception("simulator failed on a request of %s", batch_id)
        return errored("api_error", "Internal server error")


async def _until(when: float, batch: Batch, clock: Callable[[], float]) -> None:
    """Sleep until ``when`` (simulator clock) or until a cancel is asked, whichever is first."""
    delay = when - clock()
    if delay <= 0 or batch.cancel_asked.is_set():
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await batch.cancel_asked.wait()
