"""Prompt-cache accounting: breakpoints, prefix hashes, TTLs and per-model minimum lengths.

The cache maps the hash of a prompt prefix (tools, system, messages in order, per model) to its
expiry. A request reads the longest cached prefix found at or up to 20 blocks before one of its
breakpoints, and writes every breakpoint past that point whose prefix reaches the model's minimum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from core.simulator.responder import CacheUsage
from core.simulator.tokens import Segment

LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
MAX_ENTRIES = 200_000

# Longest prefix first: the first matching prefix of the model id wins.
_MIN_TOKENS: tuple[tuple[str, int], ...] = (
    ("claude-haiku-5-5", 512),
    ("claude-opus-5", 512),
    ("claude-fable-5", 512),
    ("claude-mythos-5", 512),
    ("claude-sonnet-5", 1024),
    ("claude-opus-4-8", 1024),
    ("claude-sonnet-4-6", 1024),
    ("claude-opus-4-7", 2048),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-sonnet-4-5", 1024),
)
DEFAULT_MIN_TOKENS = 1024


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix the model caches; shorter breakpoints are silently skipped, as the API does."""
    for prefix, tokens in _MIN_TOKENS:
        if model.startswith(prefix):
            return tokens
    return DEFAULT_MIN_TOKENS


class PromptCache:
    """Cache entries of one simulator (shared by all its requests), with an injectable clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[bytes, tuple[float, float]] = {}  # prefix hash -> (expiry, ttl seconds)

    def account(self, model: str, segments: list[Segment], top_level: Any, min_tokens: int) -> CacheUsage:
        """Read and write the cache for one request and report the tokens read and written by TTL."""
        breakpoints = self._breakpoints(segments, top_level)
        if not breakpoints:
            return CacheUsage()
        now = self._clock()
        hashes: list[bytes] = []
        cumulative: list[int] = []
        running = hashlib.sha256(model.encode())
        total = 0
        for segment in segments:
            running.update(len(segment.canonical).to_bytes(4, "big") + segment.canonical)
            hashes.append(running.digest())
            total += segment.tokens
            cumulative.append(total)

        read_at = -1
        for index, _ in breakpoints:
            for j in range(index, max(-1, index - LOOKBACK_BLOCKS - 1), -1):
                entry = self._entries.get(hashes[j])
                if entry is not None and entry[0] > now and j > read_at:
                    read_at = j
                    break
        if read_at >= 0:
            expiry, ttl = self._entries[hashes[read_at]]
            self._entries[hashes[read_at]] = (max(expiry, now + ttl), ttl)

        writes = {"5m": 0, "1h": 0}
        position = read_at
        for index, ttl_name in breakpoints:
            if index <= read_at or cumulative[index] < min_tokens:
                continue
            writes[ttl_name] += cumulative[index] - (cumulative[position] if position >= 0 else 0)
            position = index
            self._entries[hashes[index]] = (now + TTL_SECONDS[ttl_name], TTL_SECONDS[ttl_name])
        if len(self._entries) > MAX_ENTRIES:
            self._purge(now)
        read = cumulative[read_at] if read_at >= 0 else 0
        return CacheUsage(read=read, write_5m=writes["5m"], write_1h=writes["1h"])

    @staticmethod
    def _breakpoints(segments: list[Segment], top_level: Any) -> list[tuple[int, str]]:
        points: dict[int, str] = {}
        for index, segment in enumerate(segments):
            if isinstance(segment.cache_control, dict):
                points[index] = str(segment.cache_control.get("ttl", "5m"))
        if isinstance(top_level, dict) and segments:
            points.setdefault(len(segments) - 1, str(top_level.get("ttl", "5m")))
        return sorted((i, ttl if ttl in TTL_SECONDS else "5m") for i, ttl in points.items())

    def _purge(self, now: float) -> None:
        self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
