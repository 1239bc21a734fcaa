"""Organisation rate limits (requests, input and output tokens per minute) as token buckets.

Each bucket refills continuously at ``limit / 60`` per second, like the API's limiter. Limits that
are off still report headers, with a nominal tier-4-like capacity that is never drawn down: a
client that adapts to the headers (as the orchestrator's gate does) must not slow down against a
limit that does not exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.config.simulator import RateLimits

_NOMINAL = {"requests": 4_000, "input-tokens": 2_000_000, "output-tokens": 400_000}


class _Bucket:
    def __init__(self, limit: int, enforced: bool, now: float) -> None:
        self.limit = limit
        self.enforced = enforced
        self.level = float(limit)
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.updated) * self.limit / 60.0)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (infinite demand waits a full minute)."""
        missing = min(amount, self.limit) - self.level
        return 0.0 if missing <= 0 else missing * 60.0 / self.limit

    def full_at(self, now: float) -> float:
        return now + max(0.0, self.limit - self.level) * 60.0 / self.limit


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after: int = 0
    limit_name: str = ""


class RateLimiter:
    """Admits requests and produces the ``anthropic-ratelimit-*`` headers."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self._clock = clock
        now = clock()
        configured = {
            "requests": limits.requests_per_minute,
            "input-tokens": limits.input_tokens_per_minute,
            "output-tokens": limits.output_tokens_per_minute,
        }
        self._buckets = {
            name: _Bucket(value or _NOMINAL[name], value is not None, now)
            for name, value in configured.items()
        }

    def admit(self, input_tokens: int) -> Admission:
        """Take one request and its input tokens, or say how long to wait (429)."""
        now = self._clock()
        for bucket in self._buckets.values():
            bucket.refill(now)
        demands = {"requests": 1.0, "input-tokens": float(input_tokens), "output-tokens": 1.0}
        worst, name = 0.0, ""
        for key, amount in demands.items():
            bucket = self._buckets[key]
            if (bucket.enforced and bucket.level < min(amount, bucket.limit)) or (
                bucket.enforced and amount > bucket.limit
            ):
                wait = bucket.wait_for(amount) if amount <= bucket.limit else 60.0
                if wait >= worst:
                    worst, name = wait, key
        if name:
            return Admission(False, min(60, max(1, math.ceil(worst))), name)
        self._charge("requests", 1)
        self._charge("input-tokens", input_tokens)
        return Admission(True)

    def settle(self, output_tokens: int) -> None:
        """Charge the output tokens of an admitted request."""
        self._charge("output-tokens", output_tokens)

    def _charge(self, name: str, amount: float) -> None:
        bucket = self._buckets[name]
        if bucket.enforced:
            bucket.level -= amount

    def headers(self) -> dict[str, str]:
        now = self._clock()
        headers: dict[str, str] = {}
        for name, bucket in self._buckets.items():
            bucket.refill(now)
            remaining = max(0, int(bucket.level))
            if name != "requests":
                remaining = round(remaining, -3) if remaining >= 1000 else remaining
            headers[f"anthropic-ratelimit-{name}-limit"] = str(bucket.limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(bucket.full_at(now))
        tightest = min(
            ("input-tokens", "output-tokens"), key=lambda n: self._buckets[n].level / self._buckets[n].limit
        )
        for suffix in ("limit", "remaining", "reset"):
            headers[f"anthropic-ratelimit-tokens-{suffix}"] = headers[
                f"anthropic-ratelimit-{tightest}-{suffix}"
            ]
        return headers


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
