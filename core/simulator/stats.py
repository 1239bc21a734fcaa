"""Counters and a log of recent requests, for tests, benchmarks and ``GET /_simulator/stats``."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

RECENT = 1000


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    path: str
    status: int
    fault: str | None
    body_sha256: str
    messages: int  # of the conversation (a thread continue's: the whole, rebuilt)
    stream: bool
    stop_reason: str | None
    at: float  # when the response ended
    conversation: str = ""
    received_at: float = 0.0  # when the request arrived
    usage: dict[str, Any] | None = None  # what it billed: the whole usage, or what a cut stream sent
    bytes: int = 0  # the request body's size
    thread: str | None = None  # a message thread's "create" or "continue"
    validated_tokens: int = 0  # prompt tokens the request itself carried (what the API validates)
    first_byte_s: float = 0.0  # the simulated wait before its first byte
    prompt_tokens: int = 0  # of the whole prompt (a thread continue's rebuilt): grows with each call


class SimulatorStats:
    """What the simulator served; ``bodies`` holds parsed request bodies when recording is on."""

    def __init__(self, record_bodies: bool = False) -> None:
        self.record_bodies = record_bodies
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.active_streams = 0
        self.max_active_streams = 0
        self.recent: deque[RequestRecord] = deque(maxlen=RECENT)
        self.bodies: list[dict[str, Any]] = []

    def record(self, record: RequestRecord, body: Any = None) -> None:
        self.requests += 1
        self.by_status[record.status] += 1
        if record.fault:
            self.by_fault[record.fault] += 1
        self.recent.append(record)
        if self.record_bodies and isinstance(body, dict):
            self.bodies.append(body)

    def stream_opened(self) -> None:
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)

    def stream_closed(self) -> None:
        self.active_streams -= 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_fault": dict(self.by_fault),
            "active_streams": self.active_streams,
            "max_active_streams": self.max_active_streams,
            "recent": [asdict(r) for r in self.recent],
            "time": time.time(),
        }
