"""One Message Batch: its requests, its results as they finish, and the ``MessageBatch`` the API returns.

``request_counts`` move as requests finish (``processing`` down, the result's type up); the batch is
``in_progress``, ``canceling`` once a cancel is asked, and ``ended`` when every request has a
result. Times are the simulator clock's; the API writes them as RFC 3339 strings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from core.simulator.batches.envelope import BatchRequest

ResultType = Literal["succeeded", "errored", "canceled", "expired"]
RESULT_TYPES: tuple[ResultType, ...] = ("succeeded", "errored", "canceled", "expired")
RESULTS_KEPT_S = 29 * 86_400
"""Results stay downloadable for 29 days after creation; then the batch is archived."""


def rfc3339(at: float) -> str:
    """``2024-08-20T18:37:24.100435Z``, as the API writes times."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Batch:
    """A batch's state; the worker fills ``results`` (one line per request, in the order they finish)."""

    id: str
    requests: list[BatchRequest]
    created_at: float
    expires_at: float
    processing_status: Literal["in_progress", "canceling", "ended"] = "in_progress"
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULT_TYPES, 0))
    cancel_asked: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    def archived(self, now: float) -> bool:
        return now >= self.created_at + RESULTS_KEPT_S

    def finish(self, custom_id: str, result: dict[str, Any]) -> None:
        """Record one request's result (``{"type": ...}``) and count it."""
        self.results.append({"custom_id": custom_id, "result": result})
        self.counts[result["type"]] += 1

    def cancel(self, now: float) -> None:
        """Ask the worker to cancel what has not finished (``canceling`` until it has)."""
        if self.processing_status == "in_progress":
            self.processing_status = "canceling"
            self.cancel_initiated_at = now
            self.cancel_asked.set()

    def end(self, now: float) -> None:
        self.processing_status = "ended"
        self.ended_at = now

    def to_json(self, results_url: str, now: float) -> dict[str, Any]:
        """The ``MessageBatch`` object (``results_url`` only once ended, as the API gives it)."""
        counts: dict[str, int] = {"processing": len(self.requests) - len(self.results)}
        counts.update(self.counts)
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": counts,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "ended_at": None if self.ended_at is None else rfc3339(self.ended_at),
            "cancel_initiated_at": None
            if self.cancel_initiated_at is None
            else rfc3339(self.cancel_initiated_at),
            "archived_at": rfc3339(self.created_at + RESULTS_KEPT_S) if self.archived(now) else None,
            "results_url": results_url if self.ended else None,
        }
