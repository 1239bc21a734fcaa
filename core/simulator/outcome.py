"""What a handler learns about one request as it goes, for the request's log record (``stats``)."""

from __future__ import annotations

import hashlib
import time
from typing import Any


class Outcome:
    """What the handler learnt about a request, for its log record."""

    def __init__(self, request_id: str, raw: bytes, path: str) -> None:
        self.request_id = request_id
        self.sha = hashlib.sha256(raw).hexdigest()
        self.path = path
        self.fault: str | None = None
        self.messages = 0
        self.stream = False
        self.stop_reason: str | None = None
        self.body: Any = None
        self.received_at = time.time()
        self.usage: dict[str, Any] | None = None
        self.bytes = len(raw)
        self.thread: str | None = None  # "create" or "continue"
        self.whole: dict[str, Any] | None = None  # a thread request as the API runs it
        self.validated_tokens = 0  # prompt tokens the request itself carried
        self.first_byte_s = 0.0  # the wait before its first byte (simulated)
        self.prompt_tokens = 0
