"""Injected faults, deterministic for a seed.

Randomness for a request comes from ``sha256(seed, body digest, attempt)``, where ``attempt`` counts
earlier requests with the same body (``stream`` excluded). So the same sequence of requests meets the
same faults on every run whatever the concurrency, and an SDK retry of a failed request (same body,
next attempt) draws afresh. Each kind is drawn independently, in ``FAULT_KINDS`` order; the first
error kind that hits wins, ``slow`` combines with any. A ``[sim:fault=KIND]`` or ``[sim:fault=KIND:N]``
directive forces the fault on the first (or first N) attempts of that body.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from core.config.simulator import FAULT_KINDS, SimulatorSettings
from core.simulator.validation import Directives

ERROR_FAULTS = ("rate_limit", "overloaded", "server_error", "stream_error", "disconnect")
_MAX_TRACKED = 100_000


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What goes wrong with one request: an error kind (or None), whether the first byte is slow,
    and where a broken stream breaks (a fraction of its frames; None: in the middle)."""

    kind: str | None = None
    slow: bool = False
    attempt: int = 0
    cut: float | None = None


INVALID_REQUEST_MESSAGE = "messages.0.content.0: simulated invalid request (directive)"
"""What the forced ``invalid_request`` fault answers."""
DIRECTIVE_ONLY_FAULTS = ("invalid_request",)
"""Faults a test can force with a directive but that are never drawn at random (they are permanent)."""


class FaultInjector:
    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._attempts: dict[bytes, int] = {}

    def plan(self, digest: bytes, directives: Directives, *, streaming: bool) -> FaultPlan:
        attempt = self._attempts.get(digest, 0)
        if len(self._attempts) >= _MAX_TRACKED:
            self._attempts.clear()
        self._attempts[digest] = attempt + 1
        seed = hashlib.sha256(f"{self._settings.seed}:{attempt}:".encode() + digest).digest()
        rng = random.Random(int.from_bytes(seed[:8], "big"))
        kind: str | None = None
        slow = False
        for name in FAULT_KINDS:
            hit = rng.random() < self._settings.faults.get(name, 0.0)  # type: ignore[call-overload]
            if name == "slow":
                slow = slow or hit
            elif hit and kind is None:
                kind = name
        if directives.fault in (*FAULT_KINDS, *DIRECTIVE_ONLY_FAULTS) and attempt < directives.fault_attempts:
            if directives.fault == "slow":
                slow = True
            else:
                kind = directives.fault
        if kind == "stream_error" and not streaming:
            kind = None  # a non-streamed response has no stream to break
        cut = {"anywhere": rng.random(), "start": 0.0}.get(
            self._settings.stream_cut
        )  # drawn last: kinds stay
        return FaultPlan(kind, slow, attempt, cut)
