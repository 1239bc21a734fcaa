"""The simulator's Message Batches: created, found, listed, canceled and deleted as the API does.

Batches live as long as the simulator process; each is processed by its own task (``worker``) from
creation on. ``submitted`` counts every ``custom_id`` of every accepted batch, so a test can check
that a client submitted each request exactly once (``GET /_simulator/batches`` serves it too).
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections import Counter
from collections.abc import Callable

from core.config.simulator import SimulatorSettings
from core.simulator.batches.batch import Batch
from core.simulator.batches.envelope import BatchRequest, PageQuery
from core.simulator.batches.worker import Answer, process
from core.simulator.errors import InvalidRequest

_ID_ALPHABET = string.ascii_letters + string.digits


def new_batch_id() -> str:
    return "msgbatch_01" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


class BatchStore:
    """Every batch of one simulator, oldest first, and the tasks processing them."""

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float], answer: Answer) -> None:
        self._settings = settings
        self._clock = clock
        self._answer = answer
        self._batches: dict[str, Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.submitted: Counter[str] = Counter()
        """How many times each ``custom_id`` was submitted, over all accepted batches."""

    @property
    def max_requests(self) -> int:
        return self._settings.batch_max_requests

    def create(self, requests: list[BatchRequest]) -> Batch:
        """A new batch, already processing (needs a running event loop)."""
        now = self._clock()
        batch = Batch(new_batch_id(), requests, now, now + self._settings.batch_expiry_s)
        self._batches[batch.id] = batch
        self.submitted.update(r.custom_id for r in requests)
        task = asyncio.get_running_loop().create_task(
            process(
                batch,
                self._answer,
                processing_s=self._settings.batch_processing_s,
                seed=self._settings.seed,
                clock=self._clock,
            ),
            name=f"simulator-{batch.id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    def get(self, batch_id: str) -> Batch:
        """The batch, or the API's 404."""
        batch = self._batches.get(batch_id)
        if batch is None:
            raise InvalidRequest(
                f"message_batch_id: no Message Batch with id {batch_id!r}",
                status=404,
                error_type="not_found_error",
            )
        return batch

    def page(self, query: PageQuery) -> tuple[list[Batch], bool]:
        """A page of batches, most recent first, and whether more lie beyond it in that direction."""
        newest_first = list(reversed(self._batches.values()))
        ids = [b.id for b in newest_first]
        cursor = query.after_id or query.before_id
        if cursor is not None and cursor not in self._batches:
            which = "after_id" if query.after_id else "before_id"
            raise InvalidRequest(f"{which}: no Message Batch with id {cursor!r}")
        if query.before_id is not None:
            end = ids.index(query.before_id)
            start = max(0, end - query.limit)
            return newest_first[start:end], start > 0
        start = ids.index(query.after_id) + 1 if query.after_id is not None else 0
        return newest_first[start : start + query.limit], start + query.limit < len(ids)

    def cancel(self, batch_id: str) -> Batch:
        """Start canceling (a batch already canceling is returned as it is; an ended one cannot be)."""
        batch = self.get(batch_id)
        if batch.ended:
            raise InvalidRequest(
                f"message_batch_id: Message Batch {batch_id} has already ended and cannot be canceled"
            )
        batch.cancel(self._clock())
        return batch

    def delete(self, batch_id: str) -> None:
        """Forget an ended batch; one still processing must be canceled (and end) first."""
        batch = self.get(batch_id)
        if not batch.ended:
            raise InvalidRequest(
                f"message_batch_id: Message Batch {batch_id} is still {batch.processing_status}: only an "
                "ended batch can be deleted (cancel it first and wait until it ends)"
            )
        del self._batches[batch_id]

    def now(self) -> float:
        return self._clock()

    async def close(self) -> None:
        """Stop processing (the simulator is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # theirs; a cancel of close itself still raises
