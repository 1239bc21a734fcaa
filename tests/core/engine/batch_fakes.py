"""A small Batches API for the engine's tests: batches whose requests are answered by a function
(the simulator's Messages endpoint, or canned messages) once they have been polled enough, so a
test decides when a batch ends and what each request gets (the simulator's own Batches API runs on
its clock: ``tests/core/engine/test_batch_simulated.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.api.batches import CUSTOM_ID, BatchResult, BatchStatus
from core.api.sdk import AnthropicTransport

Answer = Callable[[str, Mapping[str, Any]], Awaitable[BatchResult]]


@dataclass
class FakeBatch:
    id: str
    requests: dict[str, Mapping[str, Any]]
    polls: int = 0
    results: dict[str, BatchResult] = field(default_factory=dict)
    status: str = "in_progress"


class FakeBatches:
    """Ends each batch at its ``polls_to_end``-th retrieve; ``answer`` gives each request's result."""

    def __init__(self, answer: Answer, *, polls_to_end: int = 2) -> None:
        self.answer = answer
        self.polls_to_end = polls_to_end
        self.batches: dict[str, FakeBatch] = {}
        self.created: list[str] = []  # every custom_id submitted, in order
        self.cancelled: list[str] = []
        self._ids = itertools.count(1)

    async def create_batch(self, requests: Sequence[tuple[str, Mapping[str, Any]]]) -> BatchStatus:
        ids = [custom_id for custom_id, _ in requests]
        assert all(CUSTOM_ID.match(c) for c in ids), ids
        assert len(set(ids)) == len(ids), ids
        batch = FakeBatch(f"msgbatch_{next(self._ids):04d}", {c: dict(p) for c, p in requests})
        self.batches[batch.id] = batch
        self.created.extend(ids)
        return self._status(batch)

    async def retrieve_batch(self, batch_id: str) -> BatchStatus:
        batch = self.batches[batch_id]
        batch.polls += 1
        if batch.status == "in_progress" and batch.polls >= self.polls_to_end:
            await self._end(batch)
        return self._status(batch)

    async def batch_results(self, batch_id: str) -> list[BatchResult]:
        batch = self.batches[batch_id]
        assert batch.status == "ended"
        return list(batch.results.values())

    async def cancel_batch(self, batch_id: str) -> BatchStatus:
        batch = self.batches[batch_id]
        self.cancelled.append(batch_id)
        if batch.status == "in_progress":
            batch.results = {c: BatchResult(c, "canceled") for c in batch.requests}
            batch.status = "ended"
        return self._status(batch)

    async def _end(self, batch: FakeBatch) -> None:
        for custom_id, params in batch.requests.items():
            batch.results[custom_id] = await self.answer(custom_id, params)
        batch.status = "ended"

    def _status(self, batch: FakeBatch) -> BatchStatus:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.status == "ended":
            for result in batch.results.values():
                counts[result.type] += 1
        else:
            counts["processing"] = len(batch.requests)
        return BatchStatus(batch.id, batch.status, counts)


def simulator_answers(transport: AnthropicTransport) -> Answer:
    """Each request answered as the (simulated) Messages endpoint answers it, unstreamed."""

    async def answer(custom_id: str, params: Mapping[str, Any]) -> BatchResult:
        message = await transport.client.messages.create(**params)
        return BatchResult(custom_id, "succeeded", message=message.to_dict(mode="json"))

    return answer
